"""Voice calls over AT commands: the host's driver (host/voicecall.py on host/modem.py's worker)
against the simulated modem (simulator/modem_voice.py) over its real TCP port: call states,
every way a call ends and the cause, refusals, hang-up, silence settings, and a call and an SMS
on the one port at once, a call's end arriving in the middle of the SMS."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from msa.host.errors import ModemError
from msa.host.modem import GsmModem
from msa.host.voicecall import CallEnd, CallInfo, CallState, VoiceCalls
from msa.simulator.modem import DeliveredSms, SimModem
from msa.simulator.modem_voice import Outcome, SimCall

T = TypeVar("T")
CENTRE = "+4930112110"  # the centre's voice number
OTHER = "030112199"  # the SMS number (no +: type 129)
WINDOW_S = 1.0  # how long a simulated call stays in a state the test looks at


def run(body: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
    async def main() -> T:
        return await asyncio.wait_for(body(), timeout)
    return asyncio.run(main())


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


@asynccontextmanager
async def rig(**sim: Any) -> AsyncIterator[tuple[SimModem, VoiceCalls]]:
    modem = SimModem(**sim)
    await modem.start()
    driver = GsmModem(modem.url)
    try:
        yield modem, VoiceCalls(driver)
    finally:
        await driver.close()
        await modem.stop()


async def ended(voice: VoiceCalls, count: int = 1) -> list[CallEnd]:
    """Call-end codes, reading the port until `count` arrived (bounded)."""
    got: list[CallEnd] = []
    limit = soon()
    while len(got) < count:
        assert time.monotonic() < limit, f"only {got} arrived"
        got += await voice.poll(deadline=soon())
        await asyncio.sleep(0.01)  # the port is read on the next round, not guessed at
    return got


async def answered_call(modem: SimModem, voice: VoiceCalls) -> SimCall:
    modem.voice.queue(Outcome.answer(after_s=0.01))
    await voice.dial(CENTRE, deadline=soon())
    call = await modem.voice.next_call()
    await asyncio.wait_for(call.answered.wait(), 5)
    return call


def test_an_answered_call_goes_dialling_alerting_active() -> None:
    async def body() -> None:
        async with rig() as (modem, voice):
            assert await voice.calls(deadline=soon()) == []
            modem.voice.queue(Outcome.answer(after_s=2 * WINDOW_S, alerting_after_s=WINDOW_S))
            await voice.dial(CENTRE, deadline=soon())
            call = await modem.voice.next_call()
            seen = [await voice.calls(deadline=soon())]
            await asyncio.wait_for(call.alerting.wait(), 5)
            seen.append(await voice.calls(deadline=soon()))
            await asyncio.wait_for(call.answered.wait(), 5)
            seen.append(await voice.calls(deadline=soon()))
            assert seen == [[CallInfo(1, state, CENTRE, True)] for state in (
                CallState.DIALLING, CallState.ALERTING, CallState.ACTIVE)]
            assert call.number == CENTRE and not call.ended.is_set()
            assert call.dialled_at < (call.alerting_at or 0) < (call.answered_at or 0)
            assert voice.ended_urcs() == []
    run(body)


def _drop(modem: SimModem, call: SimCall) -> None:
    modem.voice.drop_call()


def _remote(modem: SimModem, call: SimCall) -> None:
    modem.voice.remote_hang_up()


def _given_cause(modem: SimModem, call: SimCall) -> None:
    modem.voice.drop_call("Radio link failure")


@pytest.mark.parametrize(("outcome", "after_answer", "urc", "cause", "by"), [
    (Outcome.busy(), None, "BUSY", "User busy", "remote"),
    (Outcome.no_answer(), None, "NO ANSWER", "No answer", "network"),
    (Outcome.rejected(), None, "NO CARRIER", "Call rejected", "network"),
    (Outcome.rejected("Operator determined barring"), None, "NO CARRIER",
     "Operator determined barring", "network"),
    (Outcome.answer(0.01), _drop, "NO CARRIER", "Network out of order", "network"),
    (Outcome.answer(0.01), _given_cause, "NO CARRIER", "Radio link failure", "network"),
    (Outcome.answer(0.01), _remote, "NO CARRIER", "Normal call clearing", "remote"),
])
def test_every_call_end_reaches_the_driver_with_its_cause(
        outcome: Outcome, after_answer: Callable[[SimModem, SimCall], None] | None, urc: str,
        cause: str, by: str) -> None:
    async def body() -> None:
        async with rig() as (modem, voice):
            modem.voice.queue(outcome)
            await voice.dial(CENTRE, deadline=soon())  # OK: the set-up started
            call = await modem.voice.next_call()
            if after_answer is not None:
                await asyncio.wait_for(call.answered.wait(), 5)
                assert [c.state for c in await voice.calls(deadline=soon())] == [
                    CallState.ACTIVE]
                after_answer(modem, call)
            await asyncio.wait_for(call.ended.wait(), 5)
            assert [end.result for end in await ended(voice)] == [urc]
            assert await voice.end_cause(deadline=soon()) == cause
            assert await voice.calls(deadline=soon()) == []
            assert (call.cause, call.ended_by) == (cause, by)
    run(body)


@pytest.mark.parametrize(("outcome", "registration", "family", "code", "meaning", "retryable"), [
    (Outcome.refused(30), 1, "+CME ERROR", 30, "no network service", True),
    (Outcome.refused(32), 1, "+CME ERROR", 32, "emergency calls only", False),
    (Outcome.refused(None), 1, "NO CARRIER", None, "refused at once: NO CARRIER (Call rejected)",
     True),
    (Outcome.refused(None, "Call barred"), 1, "NO CARRIER", None, "(Call barred)", True),
    (Outcome.answer(), 3, "CREG", 3, "registration denied", False),
    (Outcome.answer(), 0, "CREG", 0, "not registered", True),
])
def test_a_call_refused_at_once_is_an_error_with_its_cause(
        outcome: Outcome, registration: int, family: str, code: int | None, meaning: str,
        retryable: bool, caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        async with rig(registration=registration) as (modem, voice):
            modem.voice.queue(outcome)
            with caplog.at_level(logging.INFO), pytest.raises(ModemError) as err:
                await voice.dial(CENTRE, deadline=soon())
            assert (err.value.family, err.value.code, err.value.retryable) == (
                family, code, retryable)
            assert meaning in str(err.value) and err.value.command in ("ATD", "AT+CREG?")
            assert await voice.calls(deadline=soon()) == []
            if family != "CREG":  # the modem saw the ATD, and the call's record says why
                assert modem.voice.calls[0].ended_by == "network"
            failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
            assert [r.name for r in failures] == ["msa.host.voicecall"]
            assert not any(CENTRE[-6:] in r.getMessage() for r in caplog.records)
            assert CENTRE[-6:] not in str(err.value)
            modem.set_registration(1)
            await voice.dial(CENTRE, deadline=soon())  # the next call goes through
    run(body)


@pytest.mark.parametrize("number", ["12", "+49 301", "1234;ATH", "123;", "+", "1" * 21, "*31#1"])
def test_a_number_atd_cannot_take_is_refused_before_the_port(number: str) -> None:
    async def body() -> None:
        async with rig() as (modem, voice):
            with pytest.raises(ModemError, match="3 to 20 digits") as err:
                await voice.dial(number, deadline=soon())
            assert not err.value.retryable and modem.connections == 0
    run(body)


def test_a_second_call_while_one_is_up_is_refused_and_the_first_stays() -> None:
    async def body() -> None:
        async with rig() as (modem, voice):
            await answered_call(modem, voice)
            with pytest.raises(ModemError) as err:
                await voice.dial(CENTRE, deadline=soon())
            assert (err.value.code, err.value.retryable) == (3, False)
            assert [c.state for c in await voice.calls(deadline=soon())] == [CallState.ACTIVE]
    run(body)


def test_hang_up_ends_the_call_without_a_call_end_code() -> None:
    async def body() -> None:
        async with rig() as (modem, voice):
            call = await answered_call(modem, voice)
            await voice.hang_up(deadline=soon())
            assert call.ended.is_set() and (call.ended_by, call.cause) == (
                "host", "Normal call clearing")
            assert await voice.calls(deadline=soon()) == []
            assert await voice.poll(deadline=soon()) == []  # ATH's OK is the end: no URC
            assert await voice.end_cause(deadline=soon()) == "Normal call clearing"
            await voice.hang_up(deadline=soon())  # nothing to end: still OK
            await voice.dial(CENTRE, deadline=soon())
            assert len(modem.voice.calls) == 2
    run(body)


def test_silence_sets_speaker_and_ringer_to_zero_and_opens_the_microphone() -> None:
    async def body() -> None:
        async with rig() as (modem, voice):
            modem.voice.settings.update({"AT+CLVL": 4, "AT+CRSL": 5, "AT+CMUT": 1})
            report = await voice.silence(deadline=soon())
            assert report.complete and report.refused == ()
            assert modem.voice.settings == {"AT+CLVL": 0, "AT+CRSL": 0, "AT+CMUT": 0}
    run(body)


@pytest.mark.parametrize(("refuses", "cme", "flags", "why"), [
    ("AT+CRSL", True, (True, False, True), "ringer: modem AT+CRSL: +CME ERROR 4: operation "
                                           "not supported"),
    ("AT+CRSL", False, (True, False, True), "ringer: modem AT+CRSL: the modem answered ERROR"),
    ("AT+CLVL", True, (False, True, True), "speaker: modem AT+CLVL: +CME ERROR 4"),
    ("AT+CMUT", True, (True, True, False), "microphone: modem AT+CMUT: +CME ERROR 4"),
])
def test_a_setting_the_modem_refuses_is_reported_and_the_rest_are_set(
        refuses: str, cme: bool, flags: tuple[bool, bool, bool], why: str) -> None:
    async def body() -> None:
        async with rig() as (modem, voice):
            modem.voice.settings.update({"AT+CLVL": 4, "AT+CRSL": 5})
            modem.voice.refuse(refuses, cme=cme)
            report = await voice.silence(deadline=soon())
            assert (report.speaker, report.ringer, report.microphone) == flags
            assert not report.complete and len(report.refused) == 1
            assert report.refused[0].startswith(why)
            assert {k: v for k, v in modem.voice.settings.items() if k != refuses} == {
                k: 0 for k in ("AT+CLVL", "AT+CRSL", "AT+CMUT") if k != refuses}
            await voice.dial(CENTRE, deadline=soon())  # the driver goes on
    run(body)


def test_a_microphone_that_reads_back_muted_is_reported() -> None:
    async def body() -> None:
        async with rig() as (modem, voice):
            modem.voice.settings["AT+CMUT"] = 1
            modem.voice.ignore("AT+CMUT")  # OK, and still muted
            report = await voice.silence(deadline=soon())
            assert not report.microphone and (report.speaker, report.ringer) == (True, True)
            assert report.refused == ("microphone: AT+CMUT? does not read back 0 (open)",)
    run(body)


def test_an_sms_goes_while_the_call_is_up_and_the_call_stays() -> None:
    async def body() -> None:
        async with rig() as (modem, voice):
            call = await answered_call(modem, voice)
            mrs = [await voice.modem.send_sms(OTHER, f"update {n}", deadline=soon())
                   for n in range(2)]
            assert mrs == [0, 1]
            sms = [await asyncio.wait_for(modem.deliveries.get(), 5) for _ in range(2)]
            assert [(s.number, s.text) for s in sms] == [(OTHER, "update 0"), (OTHER, "update 1")]
            assert await voice.calls(deadline=soon()) == [
                CallInfo(1, CallState.ACTIVE, CENTRE, True)]
            assert not call.ended.is_set() and voice.ended_urcs() == []
    run(body)


def test_a_call_and_an_sms_started_together_both_go_through() -> None:
    async def body() -> None:
        async with rig() as (modem, voice):
            modem.voice.queue(Outcome.answer(after_s=0.01))
            mr, _ = await asyncio.gather(
                voice.modem.send_sms(OTHER, "alarm", deadline=soon()),
                voice.dial(CENTRE, deadline=soon()))
            assert mr == 0 and (await modem.deliveries.get()).text == "alarm"
            call = await modem.voice.next_call()
            await asyncio.wait_for(call.answered.wait(), 5)
            assert [c.state for c in await voice.calls(deadline=soon())] == [CallState.ACTIVE]
    run(body)


def test_a_no_carrier_in_the_middle_of_an_sms_is_not_lost() -> None:
    async def body() -> None:
        sim: list[SimModem] = []

        async def on_sms(sms: DeliveredSms) -> None:
            # The network takes the SMS; before +CMGS reaches the host, the call drops.
            sim[0].voice.drop_call()

        async with rig(on_sms=on_sms) as (modem, voice):
            sim.append(modem)
            call = await answered_call(modem, voice)
            mr = await voice.modem.send_sms(OTHER, "location", deadline=soon())
            assert mr == 0 and call.ended.is_set()
            # Read during the SMS's own exchange: there without another look at the port.
            assert [end.result for end in voice.ended_urcs()] == ["NO CARRIER"]
            assert await voice.end_cause(deadline=soon()) == "Network out of order"
            assert await voice.calls(deadline=soon()) == []
    run(body)


def test_urcs_everywhere_do_not_confuse_the_voice_commands() -> None:
    async def body() -> None:
        async with rig(urc_rate=1.0) as (modem, voice):
            call = await answered_call(modem, voice)
            assert [c.state for c in await voice.calls(deadline=soon())] == [CallState.ACTIVE]
            assert (await voice.silence(deadline=soon())).complete
            modem.voice.drop_call()
            await asyncio.wait_for(call.ended.wait(), 5)
            assert [end.result for end in await ended(voice)] == ["NO CARRIER"]
            assert await voice.end_cause(deadline=soon()) == "Network out of order"
    run(body)


def test_call_ends_at_any_moment_are_each_seen_once() -> None:
    async def body() -> None:
        async with rig() as (modem, voice):
            rounds = 12
            for n in range(rounds):  # the end lands at any point of the AT+CLCC loop below
                modem.voice.queue(Outcome.no_answer(after_s=0.002 * n))
                await voice.dial(CENTRE, deadline=soon())
                call = await modem.voice.next_call()
                while await voice.calls(deadline=soon()):
                    pass
                assert call.ended.is_set()
            assert [end.result for end in await ended(voice, rounds)] == ["NO ANSWER"] * rounds
            assert await voice.poll(deadline=soon()) == []
    run(body)


def test_a_call_end_while_idle_is_kept_and_the_next_dial_is_not_confused() -> None:
    async def body() -> None:
        async with rig() as (modem, voice):
            call = await answered_call(modem, voice)
            modem.voice.drop_call()
            await asyncio.wait_for(call.ended.wait(), 5)
            await voice.dial(CENTRE, deadline=soon())  # the old NO CARRIER is no answer to it
            assert [end.result for end in voice.ended_urcs()] == ["NO CARRIER"]
            second = await modem.voice.next_call()
            await asyncio.wait_for(second.answered.wait(), 5)
            assert [c.id for c in await voice.calls(deadline=soon())] == [2]
    run(body)


def test_a_call_end_just_before_atd_is_not_taken_for_its_answer() -> None:
    async def body() -> None:
        async with rig() as (modem, voice):
            # The last call's NO CARRIER lands between AT+CREG?'s OK and ATD.
            modem.urc_after("AT+CREG?", "NO CARRIER")
            await voice.dial(CENTRE, deadline=soon())
            assert [end.result for end in voice.ended_urcs()] == ["NO CARRIER"]
            assert modem.voice.calls[0].ended_by == ""  # the new call was not refused
    run(body)


def test_a_call_outlives_a_dropped_link_and_a_hung_modem_times_out() -> None:
    async def body() -> None:
        async with rig() as (modem, voice):
            await answered_call(modem, voice)
            modem.drop_connections()
            with pytest.raises(ModemError, match="link to the modem lost"):
                await voice.calls(deadline=soon())
            assert [c.state for c in await voice.calls(deadline=soon())] == [CallState.ACTIVE]
            assert modem.connections == 2
            modem.hang()
            with pytest.raises(ModemError, match="no answer in time") as err:
                await voice.hang_up(deadline=soon(0.5))
            assert err.value.retryable and modem.voice.current is not None
            modem.resume()
            await voice.hang_up(deadline=soon())
            assert modem.voice.current is None
    run(body)


async def _talk(modem: SimModem, *exchanges: tuple[bytes, bytes]) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", modem.port)
    out = b""
    for data, end in exchanges:
        writer.write(data)
        mark = len(out)
        while not out[mark:].endswith(end):
            out += await asyncio.wait_for(reader.read(1024), 5)
    writer.close()
    return out


def test_the_simulated_modem_speaks_voice_like_a_modem() -> None:
    async def body() -> None:
        modem = SimModem()
        await modem.start()
        modem.voice.queue(Outcome.answer(after_s=60))
        ok = b"OK\r\n"
        out = await _talk(modem, (b"ATE0\r", ok), (b"AT+CLCC\r", ok), (b"ATD123\r", b"IER\r\n"),
                          (b"ATD12a;\r", b"ERROR\r\n"), (b"AT+CMEE=1\r", ok),
                          (b"ATD12a;\r", b"27\r\n"), (b"ATD+4930112110;\r", ok),
                          (b"AT+CLCC\r", ok), (b"ATD123;\r", b"3\r\n"), (b"ATH\r", ok),
                          (b"AT+CEER\r", ok), (b"AT+CLVL=9\r", b"ERROR\r\n"),
                          (b"AT+CMUT=2\r", b"ERROR\r\n"), (b"AT+CRSL=0\r", ok),
                          (b"AT+CRSL?\r", ok))
        assert out.split(b"\r\n")[1:] == [
            b"OK", b"", b"OK", b"", b"NO CARRIER", b"", b"ERROR", b"", b"OK", b"",
            b"+CME ERROR: 27", b"", b"OK", b"", b'+CLCC: 1,0,2,0,0,"+4930112110",145', b"",
            b"OK", b"", b"+CME ERROR: 3", b"", b"OK", b"", b"+CEER: Normal call clearing", b"",
            b"OK", b"", b"ERROR", b"", b"ERROR", b"", b"OK", b"", b"+CRSL: 0", b"", b"OK", b""]
        assert [(c.number, c.ended_by) for c in modem.voice.calls] == [("+4930112110", "host")]
        await modem.stop()
    run(body)
