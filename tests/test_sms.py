"""The SMS channel and GSM modem driver against the simulated modem over socket://: sends,
registration, +CMS ERROR codes, hangs, dropped links, URCs and the GSM alphabet."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from msa.wire import aml
from msa.wire import protocol as hp
from msa.wire.message import Fix, FixQuality, Message, MessageKind
from msa.host.errors import ChannelError, ModemError
from msa.host.modem import GsmModem, explain
from msa.host.sms import SmsChannel
from msa.wire.msa1 import parse_msa1, render_msa1
from msa.simulator.modem import DeliveredSms, SimModem

T = TypeVar("T")
NUMBER = "+4930112112"
KEYS = hp.ButtonKeys.from_master(bytes(range(32)))
CENTRE_KEY = bytes(range(64, 96))  # K_c: the button's and the centre's, never the host's
CENTRE = hp.CentreKey.from_master(CENTRE_KEY)
FRAME = hp.centre_frame(hp.encode_frame(KEYS, CENTRE, kind=hp.Kind.ALARM, button_id=0x0BADC0DE,
                                        boot_id=3, seq=17, gesture=hp.Gesture.HOLD,
                                        battery_pct=80, age_ms=120))
FIX = Fix(lat=52.52001, lon=13.40495, accuracy_m=7.4, time=1_700_000_000.6,
          quality=FixQuality.GNSS, source="nmea")


def message(kind: MessageKind = MessageKind.ALARM, fix: Fix | None = FIX,
            key: str = "0badc0de-3-17") -> Message:
    return Message(key=key, kind=kind, button_id=0x0BADC0DE, frame=FRAME,
                   created_at=1_700_000_001.0, fix=fix, pressed_at=1_700_000_000.2)


def run(body: Callable[[], Awaitable[T]], timeout: float = 20) -> T:
    async def main() -> T:
        return await asyncio.wait_for(body(), timeout)
    return asyncio.run(main())


@asynccontextmanager
async def rig(deadline_s: float = 5.0, **sim: Any) -> AsyncIterator[tuple[SimModem, SmsChannel]]:
    modem = SimModem(**sim)
    await modem.start()
    channel = SmsChannel(url=modem.url, number=NUMBER, deadline_s=deadline_s)
    try:
        yield modem, channel
    finally:
        await channel.close()
        await modem.stop()


async def received(modem: SimModem, count: int = 2) -> list[DeliveredSms]:
    return [await asyncio.wait_for(modem.deliveries.get(), 5) for _ in range(count)]


def test_an_alarm_goes_as_aml_then_msa1() -> None:
    async def body() -> None:
        async with rig() as (modem, channel):
            receipt = await channel.send(message())
            first, second = await received(modem)
            assert (first.number, second.number) == (NUMBER, NUMBER)
            report = aml.parse(first.text)
            assert (report.lat, report.lon, report.radius_m) == (52.52001, 13.40495, 8)
            assert report.time.timestamp() == 1_700_000_000 and report.method is aml.Method.GNSS
            assert parse_msa1(second.text) == parse_msa1(
                f"MSA1 A 0badc0de-3-17 {FRAME.hex()}")
            assert hp.verify_centre(parse_msa1(second.text).frame, CENTRE).seq == 17
            assert (receipt.channel, receipt.key, receipt.reference) == (
                "sms", "0badc0de-3-17", "0/1")
    run(body)


def test_without_a_fix_the_aml_has_no_location() -> None:
    async def body() -> None:
        heard: list[DeliveredSms] = []

        async def on_sms(sms: DeliveredSms) -> None:  # the reference centre's hook
            heard.append(sms)

        async with rig(on_sms=on_sms) as (modem, channel):
            await channel.send(message(MessageKind.TEST, fix=None))
            first, second = await received(modem)
            assert heard == [first, second]
            report = aml.parse(first.text)
            assert not report.has_location and report.time.timestamp() == 1_700_000_000
            assert parse_msa1(second.text).kind is MessageKind.TEST
    run(body)


def test_concurrent_messages_keep_each_aml_next_to_its_msa1() -> None:
    async def body() -> None:
        async with rig() as (modem, channel):
            keys = [f"0badc0de-3-{seq}" for seq in range(3)]
            fixes = [Fix(lat=10 + n, lon=20, accuracy_m=5, time=0, quality=FixQuality.GNSS,
                         source="sim") for n in range(3)]
            await asyncio.gather(*(channel.send(message(key=k, fix=f))
                                   for k, f in zip(keys, fixes)))
            texts = [sms.text for sms in await received(modem, 6)]
            pairs = {parse_msa1(texts[i + 1]).key: aml.parse(texts[i]).lat
                     for i in range(0, 6, 2)}
            assert pairs == {k: f.lat for k, f in zip(keys, fixes)}
    run(body)


def test_only_incident_location_battery_and_call_kinds_go_by_sms() -> None:
    channel = SmsChannel(url="socket://127.0.0.1:9", number=NUMBER)
    assert [k for k in MessageKind if channel.accepts(k)] == [
        MessageKind.ALARM, MessageKind.TEST, MessageKind.LOCATION, MessageKind.LOW_BATTERY,
        MessageKind.CALL]

    async def body() -> None:
        with pytest.raises(ChannelError) as err:
            await channel.send(message(MessageKind.HEARTBEAT))
        assert not err.value.retryable
        await channel.close()
    run(body)


def test_msa1_format_fits_and_parses_back() -> None:
    longest = "ffffffff-65535-4294967295/999999"
    text = render_msa1(MessageKind.LOCATION, longest, FRAME)
    assert len(text) <= 100 and parse_msa1(text).key == longest
    with pytest.raises(ValueError):
        render_msa1(MessageKind.BOOT, "0badc0de-3-17", FRAME)


@pytest.mark.parametrize("text", [
    "MSA2 A 0badc0de-3-17 " + FRAME.hex(),
    "MSA1 X 0badc0de-3-17 " + FRAME.hex(),
    "MSA1 A 0BADC0DE-3-17 " + FRAME.hex(),
    "MSA1 A 0badc0de-3-17 " + FRAME.hex()[:-2],
    "MSA1 A 0badc0de-3-17 " + FRAME.hex().upper(),
    "MSA1 A 0badc0de-3-17",
])
def test_malformed_msa1_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_msa1(text)


@pytest.mark.parametrize(("stat", "retryable"), [(0, True), (2, True), (3, False), (4, True)])
def test_no_registration_is_a_clear_error(stat: int, retryable: bool) -> None:
    async def body() -> None:
        # "+CREG: 1" URCs all along must not pass for registration.
        async with rig(registration=stat, urc_rate=1.0, urcs=("+CREG: 1",)) as (modem, channel):
            with pytest.raises(ChannelError) as err:
                await channel.send(message())
            assert "not registered" in str(err.value) and err.value.retryable is retryable
            assert modem.deliveries.empty()
            modem.set_registration(5)  # roaming is registered too
            await channel.send(message())
            await received(modem)
    run(body)


@pytest.mark.parametrize(("code", "retryable", "meaning"), [
    (331, True, "no network service"),
    (332, True, "network timeout"),
    (42, True, "congestion"),
    (330, False, "SMSC address unknown"),
    (310, False, "SIM not inserted"),
    (21, False, "short message transfer rejected"),
    (777, True, "manufacturer specific"),
])
def test_cms_errors_say_whether_a_retry_helps(code: int, retryable: bool, meaning: str) -> None:
    async def body() -> None:
        async with rig() as (modem, channel):
            modem.fail_next_send(code)
            with pytest.raises(ChannelError) as err:
                await channel.send(message())
            assert err.value.retryable is retryable
            assert f"+CMS ERROR {code}: " in str(err.value) and meaning in str(err.value)
            assert NUMBER not in str(err.value) and NUMBER[-6:] not in str(err.value)
            await channel.send(message())  # the fault was for one send only
            await received(modem)
    run(body)


def test_error_code_table() -> None:
    assert explain("+CMS ERROR", 500) == ("unknown error", True)
    assert explain("+CMS ERROR", 90)[1] and explain("+CMS ERROR", 170)[1]
    assert explain("+CME ERROR", 11) == ("SIM PIN required", False)


def test_a_hung_modem_times_out_within_the_deadline_then_recovers() -> None:
    async def body() -> None:
        async with rig(deadline_s=1.0) as (modem, channel):
            await channel.send(message())
            await received(modem)
            modem.hang()
            start = time.monotonic()
            with pytest.raises(ChannelError) as err:
                await channel.send(message())
            assert time.monotonic() - start < 1.0 + 0.3
            assert "no answer in time" in str(err.value) and err.value.retryable
            modem.resume()
            await channel.send(message())
            await received(modem)
    run(body)


def test_a_link_dropped_during_a_send_fails_it_and_the_next_send_reconnects() -> None:
    async def body() -> None:
        async with rig() as (modem, channel):
            modem.drop_next_send()
            with pytest.raises(ChannelError) as err:
                await channel.send(message())
            assert "link to the modem lost" in str(err.value) and err.value.retryable
            await channel.send(message())
            await received(modem)
            assert modem.connections == 2
    run(body)


def test_a_link_dropped_while_idle_fails_one_send_then_recovers() -> None:
    async def body() -> None:
        async with rig() as (modem, channel):
            await channel.send(message())
            await received(modem)
            modem.drop_connections()
            with pytest.raises(ChannelError, match="link to the modem lost"):
                await channel.send(message())
            await channel.send(message())
            await received(modem)
    run(body)


def test_an_unreachable_modem_is_a_retryable_error() -> None:
    async def body() -> None:
        async with rig() as (modem, _):
            url = modem.url
        channel = SmsChannel(url=url, number=NUMBER)
        with pytest.raises(ChannelError, match="cannot open") as err:
            await channel.send(message())
        assert err.value.retryable
        await channel.close()
    run(body)


def test_urcs_everywhere_do_not_confuse_the_driver() -> None:
    async def body() -> None:
        async with rig(urc_rate=1.0) as (modem, channel):
            for seq in range(3):
                await channel.send(message(key=f"0badc0de-3-{seq}"))
                first, second = await received(modem)
                assert aml.parse(first.text).lat == 52.52001
                assert parse_msa1(second.text).key == f"0badc0de-3-{seq}"
    run(body)


@pytest.mark.parametrize(("text", "why"), [
    ("alarm ✓", "not in the GSM 7-bit default alphabet"),
    ("price 5€", "needs ESC"),
    ("two\nlines", "line feed"),
    ("Ξ", "Ctrl-Z"),
    ("user@example", "NUL"),
    ("x" * 161, "more than one SMS"),
])
def test_text_mode_refuses_what_it_cannot_carry(text: str, why: str) -> None:
    async def body() -> None:
        modem = SimModem()
        await modem.start()
        driver = GsmModem(modem.url)
        with pytest.raises(ModemError, match=why) as err:
            await driver.send_sms(NUMBER, text, deadline=time.monotonic() + 5)
        assert not err.value.retryable and modem.connections == 0  # refused before the port
        await driver.close()
        await modem.stop()
    run(body)


def test_gsm_alphabet_text_arrives_intact() -> None:
    async def body() -> None:
        modem = SimModem()
        await modem.start()
        driver = GsmModem(modem.url)
        for text in ("Ångström: ¿é? _ £ Δ", "y" * 160):
            await driver.send_sms(NUMBER, text, deadline=time.monotonic() + 5)
            assert (await modem.deliveries.get()).text == text
        await driver.close()
        await modem.stop()
    run(body)


async def _talk(modem: SimModem, *exchanges: tuple[bytes, bytes]) -> bytes:
    """Raw (bytes sent, how the answer ends) exchanges with the simulated modem; returns all
    it answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", modem.port)
    out = b""
    for data, end in exchanges:
        writer.write(data)
        await writer.drain()
        mark = len(out)
        while not out[mark:].endswith(end):
            out += await asyncio.wait_for(reader.read(1024), 5)
    writer.close()
    return out


def test_simulated_modem_speaks_like_a_modem() -> None:
    async def body() -> None:
        modem = SimModem()
        await modem.start()
        ok, prompt = b"OK\r\n", b"> "
        out = await _talk(modem, (b"AT\r", ok), (b"AT+FOO\r", b"ERROR\r\n"), (b"ATE0\r", ok),
                          (b"AT+CMEE=2\r", ok), (b'AT+CMGS="123"\r', b"parameter\r\n"),
                          (b"AT+CMGF=1\r", ok), (b'AT+CMGS="123"\r', prompt), (b"hi\x1b", ok),
                          (b"AT+CMEE?\r", ok))
        assert out.startswith(b"AT\r\r\nOK\r\nAT+FOO\r\r\nERROR\r\nATE0\r\r\nOK\r\n\r\nOK\r\n")
        assert b"+CMS ERROR: invalid PDU mode parameter" in out  # verbose, and PDU mode
        assert out.endswith(b"\r\n> \r\nOK\r\n\r\n+CMEE: 2\r\n\r\nOK\r\n")  # ESC cancels
        assert modem.deliveries.empty()
        await modem.stop()
    run(body)
