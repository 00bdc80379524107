"""Per-host credentials (issue 12, part 4): a host's token and DC-09 account are good for its
own case's buttons only; a message for any other button is refused (HTTPS 403, DC-09 DUH),
revocation takes effect at once, an MSA1 counts only from the registered number, unknown
numbers' ghost calls expire and are capped, and no token or key is ever logged or stored
in the clear (the token)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import psycopg
import pytest
from backends import State, state  # noqa: F401
from hostile_kit import (BID, HOST_PHONE, OTHER_BID, OTHER_KEY, Live, alarm, frame, key,
                         update)
from hostile_kit import live_on_both_backends  # noqa: F401  (`live`, on both backends)
from pg import pg_database, pg_server  # noqa: F401

from msa.centre.core import Centre
from msa.centre.hosts import secret_hash
from msa.centre.registry import Case, Registry
from msa.centre.sms import SmsInbox
from msa.wire import aml, dc09
from msa.wire import protocol as hp
from msa.wire.api import body
from msa.wire.message import Fix, FixQuality, Message, MessageKind

pytestmark = pytest.mark.usefixtures("no_tracebacks")


def other_alarm(seq: int) -> Message:
    """An alarm of the other case's button (OTHER_KEY is its K_c at the centre)."""
    raw = hp.centre_frame(hp.encode_frame(
        hp.ButtonKeys.from_master(bytes(32)), hp.CentreKey.from_master(OTHER_KEY),
        kind=hp.Kind.ALARM, button_id=OTHER_BID, boot_id=1, seq=seq,
        gesture=hp.Gesture.HOLD, battery_pct=70, age_ms=100))
    k = Message.event_key(OTHER_BID, 1, seq)
    return Message(key=k, kind=MessageKind.ALARM, button_id=OTHER_BID, frame=raw,
                   created_at=time.time(), incident=k)


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_host_token_is_good_for_its_own_buttons_only(live: Live) -> None:
    # The other case's host holds a genuine token, and the genuine frames of our button.
    for path, m in (("/alarms", alarm(1)),
                    ("/events", Message(key(5), MessageKind.HEARTBEAT, BID,
                                        frame(hp.Kind.HEARTBEAT, 5), time.time()))):
        status, text = live.post(path, body(m), headers=_as(live.other_token))
        assert status == 403, text
    assert live.incidents() == [] and live.keys() == set()
    assert live.send(alarm(1))[0] == 201  # our host, our button
    assert live.post("/alarms", body(other_alarm(1)))[0] == 403  # and not the other's
    assert live.post("/alarms", body(other_alarm(1)), headers=_as(live.other_token))[0] == 201
    # Another host's incident is unknown to this one, as one that does not exist.
    status, _ = live.post(f"/alarms/{key(1)}/locations", body(update(1, 1)),
                          headers=_as(live.other_token))
    assert status == 404
    assert live.send(update(1, 1))[0] == 200
    assert {i["button_id"] for i in live.incidents()} == {BID, OTHER_BID}


def test_a_dc09_account_is_good_for_its_own_buttons_only(live: Live) -> None:
    foreign = live.dc09_event(alarm(1), account=live.other_account, key=live.other_key)
    reply = live.reply(live.dc09_tcp(foreign), key=live.other_key)
    assert reply.token is dc09.Token.DUH and reply.encrypted  # a final refusal
    assert live.incidents() == []
    # An account nobody was given, with a key of its own: no key to read it, DUH.
    stranger = live.dc09_event(alarm(1), account="ABCDEF012345", key=bytes(32))
    assert dc09.decode(live.dc09_tcp(stranger)).token is dc09.Token.DUH  # type: ignore[union-attr]
    assert live.incidents() == []
    assert live.reply(live.dc09_tcp(live.dc09_event(alarm(1)))).token is dc09.Token.ACK
    assert len(live.incidents()) == 1


def test_revoked_credentials_stop_at_once(live: Live) -> None:
    assert live.send(alarm(1))[0] == 201
    assert live.do(lambda: live.running.hosts.revoke("C-H"))
    assert live.send(alarm(2))[0] == 401
    # The account is no longer in service: its key is gone, so even its own encrypted event
    # cannot be read.
    reply = dc09.decode(live.dc09_tcp(live.dc09_event(alarm(2))))
    assert isinstance(reply, dc09.Dc09Reply) and reply.token is dc09.Token.DUH
    assert len(live.incidents()) == 1
    issued = live.do(lambda: live.running.issue_host("C-H"))  # a new phone: new credentials
    assert issued.token != live.token and issued.host.dc09_account != live.account
    assert live.post("/alarms", body(alarm(2)), headers=_as(issued.token))[0] == 201


def test_an_msa1_counts_only_from_the_registered_number(live: Live) -> None:
    text = f"MSA1 A {key(1)} {frame(hp.Kind.ALARM, 1).hex()}"
    for sender in ("+32470000099", "+32470000002", "", HOST_PHONE + "0"):  # +…02: case C-O's
        got = live.sms(sender, text)
        assert got is not None and got.verdict.value == "rejected", sender
    assert live.incidents() == []
    fix = Fix(51.06, 3.72, 12.0, time.time() - 2, FixQuality.GNSS, "nmea")
    assert live.sms(HOST_PHONE, aml.build(fix, now=time.time())) is None
    assert live.sms(HOST_PHONE, text).verdict.value == "accepted"
    [incident] = live.incidents()
    assert incident["channel"] == "sms" and incident["track"][0]["lat"] == pytest.approx(51.06)


def _inbox(state: State, clock: list[float], ttl_s: float = 600.0, cap: int = 100
           ) -> SmsInbox:
    registry = Registry(state.registry)
    registry.put_case(Case("C-1", "V", host_phone="+32470000001"))
    return SmsInbox(Centre(state.records, registry), ttl_s, cap, clock=lambda: clock[0])


def test_unknown_numbers_ghost_calls_expire_and_are_capped(state: State) -> None:
    clock = [1_000_000.0]
    inbox = _inbox(state, clock, ttl_s=600.0, cap=100)
    text = aml.build(Fix(51.0, 3.7, 10.0, clock[0], FixQuality.GNSS, "nmea"), now=clock[0])
    inbox.receive("+32470000001", text)  # the case's host: kept, with its case
    for i in range(250):
        clock[0] += 1
        inbox.receive(f"+3247{i:07d}", text)
    ghosts = inbox.ghost_calls()
    unknown = [g for g in ghosts if g.case_ref is None]
    assert len(unknown) == 100  # the newest 100 of 250
    assert unknown[0].sender == "+32470000249" and unknown[-1].sender == "+32470000150"
    assert [g.case_ref for g in ghosts if g.case_ref] == ["C-1"]
    clock[0] += 600 - 98  # the oldest kept one (at +151 s) is now 601 s old
    assert len([g for g in inbox.ghost_calls() if g.case_ref is None]) == 99
    clock[0] += 10_000
    assert [g.sender for g in inbox.ghost_calls()] == ["+32470000001"]  # the host's stays


def test_the_operator_sees_unknown_ghost_calls_as_unverified(live: Live) -> None:
    text = aml.build(Fix(51.0, 3.7, 10.0, time.time(), FixQuality.GNSS, "nmea"),
                     now=time.time())
    live.sms("+32470000777", text)
    live.sms(HOST_PHONE, text)
    warnings = {(w["case_ref"], w["warning"]) for w in live.state_json()["warnings"]
                if w["button_id"] is None}
    assert warnings == {("C-H", "unverified SMS ghost call"),
                        (None, "unverified SMS ghost call from an unknown number"
                               " (+32470000777)")}


def _registry_bytes(live: Live) -> bytes:
    """Everything the registry holds: its SQLite files (WAL and all), or every value of every
    table of its PostgreSQL schema."""
    if live.database is None:
        return b"".join(p.read_bytes() for p in live.root.glob("registry.db*"))
    out = []
    with psycopg.connect(live.database) as pg:
        tables = [t for (t,) in pg.execute("SELECT table_name FROM information_schema.tables"
                                           " WHERE table_schema = 'registry'")]
        assert "hosts" in tables
        for table in tables:
            for row in pg.execute(f'SELECT * FROM registry."{table}"'):
                out += [v if isinstance(v, bytes) else str(v).encode() for v in row]
    return b"\0".join(out)


def test_no_token_or_key_is_logged_or_the_token_stored(live: Live,
                                                       caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    caplog.set_level(logging.DEBUG)
    assert live.send(alarm(1))[0] == 201
    live.post("/alarms", body(alarm(1)), headers=_as(live.token[:-1] + "x"))
    live.post("/alarms", body(alarm(2)), headers=_as(live.other_token))
    live.dc09_tcp(live.dc09_event(alarm(3), account=live.other_account, key=live.other_key))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    stored = _registry_bytes(live)
    assert secret_hash(live.token) in stored  # what the centre keeps instead
    for secret in (live.token, live.other_token):
        assert secret not in logged and secret.encode() not in stored
    for aes in (live.dc09_key, live.other_key):
        assert aes.hex() not in logged.lower()


def test_msa_case_issues_shows_and_revokes_a_hosts_credentials(
        state: State, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio
    import http.client
    import ssl

    from msa.centre.server import start_centre
    from msa.tools.cli import main

    reg = state.database or str(state.dir / "registry.db")
    main(["case", "add", "--registry", reg, "--case", "GENT-1", "--victim", "V"])
    main(["case", "issue", "--registry", reg, "--case", "GENT-1"])
    printed = capsys.readouterr().out
    token = printed.split("API token (https token_file): ")[1].split()[0]
    account = printed.split("DC-09 account (dc09 account): ")[1].split()[0]
    aes = printed.split("DC-09 key (dc09 key_file, AES-256): ")[1].split()[0]
    assert len(token) >= 40 and len(account) == 12 and len(bytes.fromhex(aes)) == 32
    main(["case", "show", "--registry", reg, "--case", "GENT-1"])
    shown = capsys.readouterr().out
    assert f"host GENT-1: DC-09 account {account}" in shown
    assert token not in shown and aes not in shown  # shown once, at issue, never again
    for argv, says in ((["issue", "--case", "GENT-1"], "in service already"),
                       (["issue", "--case", "NOPE"], "no case"),
                       (["revoke", "--host", "NOPE"], "none in service")):
        with pytest.raises(SystemExit):
            main(["case", argv[0], "--registry", reg, *argv[1:]])
        assert says in capsys.readouterr().err

    async def status_with(c: object, bearer: str) -> int:
        def post() -> int:
            conn = http.client.HTTPSConnection(
                "127.0.0.1", c.api_port,  # type: ignore[attr-defined]
                context=ssl.create_default_context(
                    cafile=str(c.tls.ca_cert)), timeout=20)  # type: ignore[attr-defined]
            conn.request("POST", "/v1/events", body=b"{}",
                         headers={"Authorization": f"Bearer {bearer}"})
            got = conn.getresponse().status
            conn.close()
            return got
        return await asyncio.to_thread(post)

    async def body_() -> tuple[int, int]:
        c = await start_centre(state.config())
        try:
            before = await status_with(c, token)  # authenticated: the body is what is wrong
            # Revoked from another process (the CLI) while the centre runs.
            await asyncio.to_thread(main, ["case", "revoke", "--registry", reg, "--case",
                                           "GENT-1"])
            return before, await status_with(c, token)
        finally:
            await c.stop()
    assert asyncio.run(body_()) == (400, 401)


def test_msa_case_issue_writes_the_secrets_to_private_files_when_asked(
        tmp_path: Path, state: State, capsys: pytest.CaptureFixture[str]) -> None:
    from msa.tools.cli import main

    reg = state.database or str(state.dir / "registry.db")
    main(["case", "add", "--registry", reg, "--case", "GENT-2", "--victim", "V"])
    token, aes = tmp_path / "api.token", tmp_path / "dc09.key"
    main(["case", "issue", "--registry", reg, "--case", "GENT-2", "--host", "gent-2/phone",
          "--token-out", str(token), "--dc09-key-out", str(aes)])
    printed = capsys.readouterr().out
    for path in (token, aes):
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text().strip() not in printed
    assert len(bytes.fromhex(aes.read_text().strip())) == 32
    with pytest.raises(SystemExit):  # never overwritten, and nothing issued for it
        main(["case", "issue", "--registry", reg, "--case", "GENT-2", "--host", "second",
              "--token-out", str(token)])
    assert "exists" in capsys.readouterr().err
    main(["case", "show", "--registry", reg, "--case", "GENT-2"])
    assert capsys.readouterr().out.count("  host ") == 1


def test_a_button_moved_to_another_case_leaves_its_old_host_at_once(live: Live) -> None:
    from hostile_kit import CENTRE_KEY

    registry = live.running.centre.registry
    assert live.send(alarm(1))[0] == 201
    live.do(lambda: registry.register(BID, CENTRE_KEY, "C-O"))  # re-provisioned for C-O
    assert live.send(alarm(2))[0] == 403
    assert live.post("/alarms", body(alarm(2)), headers=_as(live.other_token))[0] == 201
    live.do(lambda: registry.retire(BID))
    assert live.post("/alarms", body(alarm(3)), headers=_as(live.other_token))[0] == 403


def test_a_ghost_call_stays_until_a_verified_msa1_from_its_number(live: Live) -> None:
    fix = Fix(51.06, 3.72, 12.0, time.time() - 2, FixQuality.GNSS, "nmea")
    live.sms(HOST_PHONE, aml.build(fix, now=time.time()))
    forged = frame(hp.Kind.ALARM, 1)[:-1] + bytes([frame(hp.Kind.ALARM, 1)[-1] ^ 1])
    got = live.sms(HOST_PHONE, f"MSA1 A {key(1)} {forged.hex()}")
    assert got is not None and got.verdict.value == "rejected"
    assert [g.case_ref for g in live.do(live.running.sms.ghost_calls)] == ["C-H"]
    got = live.sms(HOST_PHONE, f"MSA1 A {key(1)} {frame(hp.Kind.ALARM, 1).hex()}")
    assert got is not None and got.verdict.value == "accepted"
    assert live.do(live.running.sms.ghost_calls) == []


def test_the_ghost_call_limits_are_the_centres_settings(tmp_path: Path, state: State) -> None:
    import asyncio

    from msa.centre.errors import CentreConfigError
    from msa.centre.server import CentreConfig, start_centre

    async def body_() -> tuple[float, int]:
        c = await start_centre(CentreConfig(tmp_path / "a", ghost_ttl_s=5.0, max_ghosts=2,
                                            database=state.database))
        try:
            return c.sms.ghost_ttl_s, c.sms.max_ghosts
        finally:
            await c.stop()
    assert asyncio.run(body_()) == (5.0, 2)
    for bad in ({"ghost_ttl_s": 0.0}, {"max_ghosts": 0}):
        with pytest.raises(CentreConfigError):
            asyncio.run(start_centre(CentreConfig(tmp_path / "b", database=state.database,
                                                  **bad)))  # type: ignore[arg-type]
