"""A sleep-mode button speaks once an hour: the centre calls it silent only after missing
three of its own heartbeats, and a connected button still after three minutes."""
from __future__ import annotations

import secrets
from pathlib import Path

from msa.centre.core import SILENT_HEARTBEATS, Centre, Inbound, Verdict
from msa.centre.registry import Case, Registry
from msa.wire import protocol as hp
from msa.wire.message import Message, MessageKind

KEY = secrets.token_bytes(32)
KEYS = hp.ButtonKeys.from_master(KEY)
CENTRE_KEY = bytes(range(64, 96))  # K_c: the button's and the centre's, never the host's
CENTRE = hp.CentreKey.from_master(CENTRE_KEY)
AWAKE, SLEEPY = 0x0A0B0C01, 0x0A0B0C02


def _heartbeat(centre: Centre, button_id: int, seq: int, at: float) -> None:
    raw = hp.centre_frame(hp.encode_frame(KEYS, CENTRE, kind=hp.Kind.HEARTBEAT,
                                          button_id=button_id, boot_id=1, seq=seq,
                                          battery_pct=80, age_ms=1000))
    got = centre.ingest(Inbound("https", Message.event_key(button_id, 1, seq),
                                MessageKind.HEARTBEAT, button_id, raw, received_at=at))
    assert got.verdict is Verdict.ACCEPTED


def test_silence_is_measured_in_each_buttons_own_heartbeats(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    reg = Registry(tmp_path / "reg.db")
    reg.put_case(Case("C-1", "V"))
    for button_id in (AWAKE, SLEEPY):
        reg.register(button_id, CENTRE_KEY, "C-1")
    reg.expect_heartbeat(SLEEPY, 3600)  # as `msa provision --power sleep` records it
    assert reg.heartbeat_periods() == {SLEEPY: 3600}
    centre = Centre(tmp_path / "rec.db", reg, clock=lambda: now[0])
    _heartbeat(centre, AWAKE, 1, now[0])
    _heartbeat(centre, SLEEPY, 1, now[0])
    now[0] += 181
    silent = [w["button_id"] for w in centre.warnings() if w["warning"] == "silent"]
    assert silent == [AWAKE]  # asleep between two hourly wakes is not missing
    now[0] += SILENT_HEARTBEATS * 3600 - 181 - 1
    assert [w["button_id"] for w in centre.warnings()] == [AWAKE]
    now[0] += 2
    assert [w["button_id"] for w in centre.warnings()] == [AWAKE, SLEEPY]
    centre.close()
    reg.close()


def test_a_registry_from_before_heartbeat_periods_opens_and_keeps_its_buttons(
        tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE buttons (button_id INTEGER PRIMARY KEY, key BLOB NOT NULL,"
               " case_ref TEXT, registered_at REAL NOT NULL, retired_at REAL)")
    db.execute("INSERT INTO buttons VALUES (?, ?, NULL, 0, NULL)", (AWAKE, KEY))
    db.commit()
    db.close()
    reg = Registry(path)
    assert reg.buttons() == [AWAKE] and reg.heartbeat_periods() == {}
    reg.close()
