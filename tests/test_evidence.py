"""Signed evidence bundles: a real started centre takes an alarm, its track and a duplicate over
SMS, an operator notes and resolves it; the incident is exported and the state folder then
deleted, so every check below runs on the bundle alone. The bundle verifies with the pinned key
and the button's K_c; a flipped bit anywhere, a missing, added or swapped file, another key, an
edited audit entry or frame (even re-signed with the centre's own key) fails it; verify never
raises on a malformed bundle; the CLI verifies in a fresh process."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from msa.centre.audit import AuditLog
from msa.centre.core import Inbound, Verdict
from msa.centre.errors import EvidenceError
from msa.centre.evidence import canonical, content_digest, export, verify
from msa.centre.evidence_check import BUNDLE_FILES, MANIFEST, SIGNATURE
from msa.centre.notes import Notes
from msa.centre.registry import Case
from msa.centre.server import CentreConfig, start_centre
from msa.centre.signing import SigningKey, fingerprint, key_path, signing_key
from msa.tools import cli_evidence
from msa.tools.errors import ToolError
from msa.wire import protocol as hp
from msa.wire.message import Fix, FixQuality, Message, MessageKind

KEYS = hp.ButtonKeys.from_master(bytes(range(32)))
CENTRE_KEY = bytes(range(64, 96))  # K_c: the button's and the centre's, never the host's
CENTRE = hp.CentreKey.from_master(CENTRE_KEY)
BID = 0x0C0FFEE5
FIXES = 4  # the alarm's own position and three updates
ALL_FILES = (*BUNDLE_FILES, MANIFEST, SIGNATURE)
NOTE = "Patrol 12 on scene 10:14; suspect <gone>\n\tvictim safe & unharmed"


def _raw(seq: int, boot_id: int = 2, centre: hp.CentreKey = CENTRE) -> bytes:
    return hp.centre_frame(hp.encode_frame(KEYS, centre, kind=hp.Kind.ALARM, button_id=BID,
                                           boot_id=boot_id, seq=seq, gesture=hp.Gesture.HOLD,
                                           battery_pct=64, age_ms=40))


def _alarm(seq: int, t0: float) -> list[Inbound]:
    """An alarm over HTTPS with its position, then FIXES - 1 location updates."""
    raw, key = _raw(seq), Message.event_key(BID, 2, seq)
    out = []
    for n in range(FIXES):
        fix = Fix(51.0543 + n * 0.0002, 3.7174 + n * 0.0003, 6.0, t0 + 10 * n,
                  FixQuality.GNSS, "nmea")
        out.append(Inbound("https", key if n == 0 else f"{key}/{n}",
                           MessageKind.ALARM if n == 0 else MessageKind.LOCATION, BID, raw, fix,
                           incident=key, update_no=n, pressed_at=t0, received_at=t0 + 10 * n))
    return out


@dataclass(frozen=True)
class Exported:
    bundle: Path  # never written to by a test: each test mutates its own copy
    public_key: bytes
    signer: SigningKey  # the centre's key, held in memory only (the state folder is gone)
    folder_mode: int
    file_modes: dict[str, int]
    printed: str  # what `msa centre export` and `msa centre key` printed


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    root = tmp_path_factory.mktemp("evidence")
    state = root / "centre"

    async def run() -> None:
        c = await start_centre(CentreConfig(state_dir=state, dc09_port=None))
        try:
            reg = c.centre.registry
            reg.put_case(Case("CASE-17", "Jane <Doe>", "+32470000017", "John Roe",
                              "stalks at work", ("restraining order: 200 m",), weapons=True))
            reg.register(BID, CENTRE_KEY, "CASE-17")
            t0 = time.time() - 120
            verdicts = [c.centre.ingest(m).verdict for m in _alarm(4, t0)]
            # The host's SMS ghost call carries the same key: acknowledged, not counted again.
            dup = c.centre.ingest(Inbound.keyed("sms", Message.event_key(BID, 2, 4),
                                                MessageKind.ALARM, _raw(4), None, t0 + 3))
            assert verdicts == [Verdict.ACCEPTED] * FIXES and dup.verdict is Verdict.DUPLICATE
            number = c.centre.incident_id("INC-000001")
            assert number is not None
            notes = Notes(state / "records.db")
            audit = AuditLog(state / "audit.db")
            try:
                notes.add(number, "op.anna", NOTE, t0 + 50)
                audit.append("op.anna", "incident.note", "INC-000001", "127.0.0.1")
                audit.append("op.anna", "case.view", "CASE-17", "127.0.0.1")  # not the incident's
                assert c.centre.resolve("INC-000001")
                audit.append("op.anna", "incident.resolve", "INC-000001", "127.0.0.1")
            finally:
                notes.close()
                audit.close()
            # Exported while the centre runs, as the CLI would: its own connections.
            runner = CliRunner()
            out = runner.invoke(cli_evidence.export, ["--state-dir", str(state), "--incident",
                                                      "INC-000001", "--out",
                                                      str(root / "bundle")])
            assert out.exit_code == 0, out.output
            keyed = runner.invoke(cli_evidence.key, ["--state-dir", str(state)])
            assert keyed.exit_code == 0, keyed.output
            printed.append(out.output + keyed.output)
        finally:
            await c.stop()

    printed: list[str] = []
    asyncio.run(run())
    signer = signing_key(state)
    key_file = key_path(state)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    bundle = root / "bundle"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in bundle.iterdir()}
    shutil.rmtree(state)  # from here on, only the bundle exists
    return Exported(bundle, signer.public_key, signer, stat.S_IMODE(bundle.stat().st_mode),
                    modes, printed[0])


def _copy(exported: Exported, where: Path) -> Path:
    target = where / "copy"
    shutil.copytree(exported.bundle, target)
    return target


def _ok(report_checks: list[Any]) -> dict[str, bool]:
    return {c.name: c.ok for c in report_checks}


def _load(bundle: Path, name: str) -> dict[str, Any]:
    return dict(json.loads((bundle / name).read_text()))


# --- the bundle as exported -------------------------------------------------------------------

def test_bundle_verifies_with_the_pinned_key_and_the_buttons_key(exported: Exported) -> None:
    report = verify(exported.bundle, public_key=exported.public_key,
                    centre_keys={BID: CENTRE_KEY})
    assert report.ok, report.checks
    assert [c.name for c in report.checks] == ["signature", "files", "audit", "export entry",
                                               "frames", "timeline"]
    details = {c.name: c.detail for c in report.checks}
    assert "pinned" in details["signature"] and "NOT" not in details["signature"]
    assert details["frames"] == f"{FIXES + 1} frames, each the button's own (centre tag verified)"


def test_without_keys_the_report_says_what_it_did_not_check(exported: Exported) -> None:
    report = verify(exported.bundle)
    assert report.ok
    details = {c.name: c.detail for c in report.checks}
    assert "NOT PINNED" in details["signature"]
    assert fingerprint(exported.public_key) in details["signature"]
    assert details["frames"] == f"{FIXES + 1} frames NOT checked (no key given)"


def test_bundle_holds_the_incident_its_frames_and_its_own_export_entry(
        exported: Exported) -> None:
    b = exported.bundle
    assert sorted(p.name for p in b.iterdir()) == sorted(ALL_FILES)
    assert exported.folder_mode == 0o700 and set(exported.file_modes.values()) == {0o600}
    manifest = _load(b, MANIFEST)
    assert manifest["format"] == "msa-evidence-1" and manifest["incident"] == "INC-000001"
    assert manifest["centre_key"] == exported.public_key.hex()
    assert manifest["exported_by"].startswith("cli:")
    assert manifest["exported_at"].endswith("Z")
    assert manifest["files"] == {n: hashlib.sha256((b / n).read_bytes()).hexdigest()
                                 for n in BUNDLE_FILES}
    timeline = _load(b, "timeline.json")
    assert timeline["case"]["victim"] == "Jane <Doe>"
    assert timeline["case"]["measures"] == ["restraining order: 200 m"]
    assert timeline["status"] == "resolved" and len(timeline["track"]) == FIXES
    notes = [e for e in timeline["events"] if e["what"] == "note"]
    assert [(n["author"], n["text"]) for n in notes] == [("op.anna", NOTE)]
    frames = _load(b, "frames.json")["frames"]
    assert [(f["channel"], f["key"]) for f in frames][:2] == \
        [("https", "0c0ffee5-2-4"), ("sms", "0c0ffee5-2-4")]
    assert len(frames) == FIXES + 1 and {f["button_id"] for f in frames} == {BID}
    assert {f["frame_hex"] for f in frames} == {_raw(4).hex()}
    excerpt = _load(b, "audit.json")
    actions = [e["action"] for e in excerpt["entries"]]
    assert actions == ["incident.note", "incident.resolve", "incident.export"]
    assert [e["seq"] for e in excerpt["entries"]] == [1, 3, 4]  # seq 2 is another subject's
    last = excerpt["entries"][-1]
    assert json.loads(last["detail_json"]) == {"out": "bundle", "manifest_sha256":
                                               content_digest(manifest["files"])}
    assert excerpt["head"] == {"count": 4, "hash": last["hash"]}
    assert "bundle:" in exported.printed and fingerprint(exported.public_key) in exported.printed
    assert f"public key: {exported.public_key.hex()}" in exported.printed


def test_report_is_self_contained_and_escapes_every_text(exported: Exported) -> None:
    page = (exported.bundle / "report.html").read_text()
    assert "Jane &lt;Doe&gt;" in page and "Jane <Doe>" not in page
    assert "suspect &lt;gone&gt;" in page and "&amp; unharmed" in page
    assert "<script" not in page.lower() and "INC-000001" in page
    lowered = page.lower()
    assert not [w for w in ("src=", "href=", "url(", "@import", "<link", "<img", "<iframe",
                            "<object") if w in lowered]  # nothing to fetch from anywhere
    assert "default-src 'none'" in page
    polyline = page.split('<polyline points="')[1].split('"')[0]
    assert len(polyline.split()) == FIXES
    assert "T" in page.split("Opened (centre)</td><td>")[1][:30]  # ISO 8601 time


# --- tampering --------------------------------------------------------------------------------

def _flip(path: Path, offset: int, xor: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= xor
    path.write_bytes(bytes(data))


def test_one_flipped_bit_at_the_start_middle_or_end_of_any_file_fails(
        exported: Exported, tmp_path: Path) -> None:
    for name in ALL_FILES:
        size = (exported.bundle / name).stat().st_size
        for offset in (0, size // 2, size - 1):
            for pinned in (exported.public_key, None):
                copy = _copy(exported, tmp_path)
                _flip(copy / name, offset, 0x01)
                report = verify(copy, public_key=pinned, centre_keys={BID: CENTRE_KEY})
                failed = [c.name for c in report.checks if not c.ok]
                assert not report.ok, (name, offset, pinned)
                assert failed[0] == ("signature" if name in (MANIFEST, SIGNATURE) else
                                     "files"), (name, offset, failed)
                shutil.rmtree(copy)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(ALL_FILES), offset=st.integers(min_value=0),
       xor=st.integers(min_value=1, max_value=255), pinned=st.booleans())
def test_any_changed_byte_fails(exported: Exported, name: str, offset: int, xor: int,
                                pinned: bool) -> None:
    with tempfile.TemporaryDirectory() as where:
        copy = _copy(exported, Path(where))
        _flip(copy / name, offset, xor)
        report = verify(copy, public_key=exported.public_key if pinned else None,
                        centre_keys={BID: CENTRE_KEY})
        assert not report.ok


def test_another_pinned_key_fails(exported: Exported) -> None:
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw,
                                                                  PublicFormat.Raw)
    report = verify(exported.bundle, public_key=other)
    assert not report.ok and _ok(report.checks)["signature"] is False
    assert not verify(exported.bundle, public_key=exported.public_key[:31]).ok


def test_another_buttons_key_fails_the_frames(exported: Exported) -> None:
    report = verify(exported.bundle, public_key=exported.public_key,
                    centre_keys={BID: bytes(32)})
    assert _ok(report.checks) == {"signature": True, "files": True, "audit": True,
                                  "export entry": True, "frames": False, "timeline": True}
    assert not verify(exported.bundle, centre_keys={0x12345678: CENTRE_KEY}).ok


@pytest.mark.parametrize("name", ALL_FILES)
def test_a_removed_file_fails(exported: Exported, tmp_path: Path, name: str) -> None:
    copy = _copy(exported, tmp_path)
    (copy / name).unlink()
    report = verify(copy, public_key=exported.public_key)
    assert not report.ok
    assert not verify(copy).ok


@pytest.mark.parametrize("extra", ["notes.txt", ".hidden", "manifest.json.bak", "sub/"])
def test_an_added_file_fails(exported: Exported, tmp_path: Path, extra: str) -> None:
    copy = _copy(exported, tmp_path)
    if extra.endswith("/"):
        (copy / extra).mkdir()
    else:
        (copy / extra).write_text("added later")
    report = verify(copy, public_key=exported.public_key, centre_keys={BID: CENTRE_KEY})
    assert _ok(report.checks)["files"] is False and not report.ok


def test_a_file_swapped_for_a_symlink_fails(exported: Exported, tmp_path: Path) -> None:
    copy = _copy(exported, tmp_path)
    (copy / "report.html").rename(tmp_path / "report.html")
    (copy / "report.html").symlink_to(tmp_path / "report.html")
    assert _ok(verify(copy, public_key=exported.public_key).checks)["files"] is False


# --- edits re-signed with the centre's own key: the inner checks still catch them -------------

def _resign(exported: Exported, bundle: Path, edit: Callable[[dict[str, Any]], None],
            name: str) -> None:
    """Edits `name` as JSON, then rewrites the manifest's digests and signs it again: what
    only the holder of the centre's key could do."""
    obj = _load(bundle, name)
    edit(obj)
    (bundle / name).write_bytes(canonical(obj))
    manifest = _load(bundle, MANIFEST)
    manifest["files"] = {n: hashlib.sha256((bundle / n).read_bytes()).hexdigest()
                         for n in manifest["files"]}
    data = canonical(manifest)
    (bundle / MANIFEST).write_bytes(data)
    (bundle / SIGNATURE).write_bytes(exported.signer.sign(data))


def _set_entry(i: int, field: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda obj: obj["entries"][i].__setitem__(field, value)


EDITS: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    ("audit actor edited", "audit.json", _set_entry(0, "actor", "op.bert"), "audit"),
    ("audit seq edited", "audit.json", _set_entry(1, "seq", 2), "audit"),
    ("audit entries reordered", "audit.json", lambda o: o["entries"].reverse(), "audit"),
    ("audit time as int", "audit.json",
     lambda o: o["entries"][0].__setitem__("at", int(o["entries"][0]["at"])), "audit"),
    ("audit head behind", "audit.json", lambda o: o["head"].__setitem__("count", 3), "audit"),
    ("audit head hash", "audit.json", lambda o: o["head"].__setitem__("hash", "00" * 32),
     "audit"),
    ("export entry dropped", "audit.json", lambda o: o["entries"].pop(), "export entry"),
    ("export entry of other files", "audit.json",
     _set_entry(2, "detail_json", '{"manifest_sha256":"' + "0" * 64 + '","out":"bundle"}'),
     "audit"),
    ("frame forged", "frames.json",
     lambda o: o["frames"][1].__setitem__("frame_hex",
                                          _raw(4, centre=hp.CentreKey.from_master(bytes(32)))
                                          .hex()), "frames"),
    ("frame of another press", "frames.json",
     lambda o: o["frames"][1].__setitem__("frame_hex", _raw(5).hex()), "frames"),
    ("frame received later", "frames.json",
     lambda o: o["frames"][0].__setitem__("received_at", o["frames"][0]["received_at"] + 60),
     "timeline"),
    ("timeline frame dropped", "timeline.json", lambda o: o["frames"].pop(), "timeline"),
    ("timeline of another incident", "timeline.json",
     lambda o: o.__setitem__("incident", "INC-000002"), "timeline"),
]


@pytest.mark.parametrize(("name", "edit", "check"), [e[1:] for e in EDITS],
                         ids=[e[0] for e in EDITS])
def test_a_resigned_edit_fails_its_check(exported: Exported, tmp_path: Path, name: str,
                                         edit: Callable[[dict[str, Any]], None],
                                         check: str) -> None:
    copy = _copy(exported, tmp_path)
    _resign(exported, copy, edit, name)
    report = verify(copy, public_key=exported.public_key, centre_keys={BID: CENTRE_KEY})
    results = _ok(report.checks)
    assert results["signature"] and results["files"]  # the forgery itself is well made
    assert results[check] is False and not report.ok, report.checks


MALFORMED: list[tuple[str, str, bytes]] = [
    ("manifest not JSON", MANIFEST, b"{not json"),
    ("manifest a list", MANIFEST, b"[]"),
    ("manifest files a list", MANIFEST,
     b'{"format": "msa-evidence-1", "incident": "INC-000001", "files": []}'),
    ("manifest lists a path", MANIFEST,
     b'{"format": "msa-evidence-1", "incident": "INC-000001", "files": {"../x": "00"}}'),
    ("manifest not UTF-8", MANIFEST, b"\xff\xfe{}"),
    ("manifest deeply nested", MANIFEST, b"[" * 100_000),
    ("audit entries strings", "audit.json", b'{"entries": ["a"], "head": {}}'),
    ("audit entry fields null", "audit.json", b'{"entries": [{}], "head": {}}'),
    ("frames of wrong types", "frames.json",
     b'{"incident": "INC-000001", "frames": [{"key": 1, "button_id": "x"}]}'),
    ("frames hex odd", "frames.json",
     b'{"incident": "INC-000001", "frames": [{"key": "k", "channel": "c", "received_at": 1,'
     b' "frame_hex": "abc", "button_id": 1}]}'),
    ("timeline a number", "timeline.json", b"7"),
    ("timeline huge int", "timeline.json", b'{"frames": ' + b"9" * 5000 + b"}"),
    ("signature empty", SIGNATURE, b""),
]


@pytest.mark.parametrize(("name", "content"), [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_a_malformed_bundle_is_a_failed_check_never_an_exception(
        exported: Exported, tmp_path: Path, name: str, content: bytes) -> None:
    for pinned in (exported.public_key, None):
        copy = _copy(exported, tmp_path)
        (copy / name).write_bytes(content)
        if name not in (MANIFEST, SIGNATURE):  # re-signed: the parsers themselves meet it
            manifest = _load(copy, MANIFEST)
            manifest["files"][name] = hashlib.sha256(content).hexdigest()
            data = canonical(manifest)
            (copy / MANIFEST).write_bytes(data)
            (copy / SIGNATURE).write_bytes(exported.signer.sign(data))
        for keys in ({BID: CENTRE_KEY}, None):
            report = verify(copy, public_key=pinned, centre_keys=keys)
            assert not report.ok
            assert not any(c.detail.startswith("malformed bundle") for c in report.checks), \
                report.checks  # each fault met by a check that foresaw it
        shutil.rmtree(copy)
    assert not verify(tmp_path / "nowhere").ok


# --- the command line -------------------------------------------------------------------------

def _kc_file(where: Path) -> Path:
    path = where / "button.kc"
    path.write_text(CENTRE_KEY.hex())
    path.chmod(0o600)
    return path


def test_cli_verify_in_a_fresh_process_without_the_centre(exported: Exported,
                                                         tmp_path: Path) -> None:
    copy = _copy(exported, tmp_path)
    pub = tmp_path / "centre.pub"
    pub.write_text(exported.public_key.hex() + "\n")
    argv = [sys.executable, "-m", "msa.tools.cli_evidence", "verify", str(copy),
            "--public-key-file", str(pub), "--centre-key-file", str(_kc_file(tmp_path)),
            "--button", "0c0ffee5"]
    good = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert good.returncode == 0, good.stdout + good.stderr
    lines = good.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:6]] == [
        "ok   signature", "ok   files", "ok   audit", "ok   export entry", "ok   frames",
        "ok   timeline"]
    _flip(copy / "report.html", 100, 0x20)
    bad = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert bad.returncode == 1
    assert "FAIL files: report.html is not the file the manifest lists" in bad.stdout
    assert bad.stderr.startswith("msa: ") and "does NOT verify" in bad.stderr


def test_cli_verify_options(exported: Exported, tmp_path: Path) -> None:
    runner = CliRunner()
    kc = _kc_file(tmp_path)
    ok = runner.invoke(cli_evidence.verify, [str(exported.bundle), "--public-key",
                                             exported.public_key.hex(), "--centre-key-file",
                                             str(kc), "--button", "0x0C0FFEE5"])
    assert ok.exit_code == 0, ok.output
    assert "ok   frames: 5 frames, each the button's own" in ok.output
    unpinned = runner.invoke(cli_evidence.verify, [str(exported.bundle)])
    assert unpinned.exit_code == 0 and "NOT PINNED" in unpinned.output
    for args, message in [
            (["--public-key", "ab" * 31], "64 hex digits"),
            (["--public-key", "00" * 32], "does NOT verify"),
            (["--centre-key-file", str(kc)], "needs its --button"),
            (["--centre-key-file", str(kc), "--button", "xyz"], "no button id"),
            (["--centre-key-file", str(kc), "--button", "00000000"], "no button id")]:
        result = runner.invoke(cli_evidence.verify, [str(exported.bundle), *args])
        assert isinstance(result.exception, ToolError), (args, result.output)
        assert message in str(result.exception)
    kc.chmod(0o644)  # a K_c readable by others is refused, as the host refuses it
    result = runner.invoke(cli_evidence.verify, [str(exported.bundle), "--centre-key-file",
                                                 str(kc), "--button", "0c0ffee5"])
    assert isinstance(result.exception, ToolError) and "chmod 600" in str(result.exception)


# --- export's refusals and the signing key ----------------------------------------------------

@pytest.fixture
def small_centre(tmp_path: Path) -> Path:
    """A state folder with one incident, made with the stores directly."""
    from msa.centre.core import Centre
    from msa.centre.registry import Registry

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    registry = Registry(state / "registry.db")
    registry.register(BID, CENTRE_KEY, None)
    centre = Centre(state / "records.db", registry)
    assert centre.ingest(_alarm(9, time.time() - 5)[0]).verdict is Verdict.ACCEPTED
    centre.close()
    registry.close()
    return state


def _audit_count(state: Path) -> int:
    log = AuditLog(state / "audit.db")
    try:
        return log.head()[0]
    finally:
        log.close()


def test_export_refuses_and_leaves_nothing(small_centre: Path, tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    for ref, out, what in [("INC-000001", used, "is not empty"),
                           ("INC-000001", used / "keep.txt", "not a folder"),
                           ("INC-000002", tmp_path / "b1", "no such incident"),
                           ("nonsense", tmp_path / "b2", "no such incident")]:
        with pytest.raises(EvidenceError, match=what):
            export(small_centre, ref, out, actor="cli:test", source="cli")
    refused = CliRunner().invoke(cli_evidence.export, ["--state-dir", str(small_centre),
                                                       "--incident", "INC-000007", "--out",
                                                       str(tmp_path / "b4")])
    assert isinstance(refused.exception, EvidenceError) and refused.exit_code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state", "used"]
    assert [p.name for p in used.iterdir()] == ["keep.txt"]
    assert _audit_count(small_centre) == 0  # nothing exported, nothing recorded
    with pytest.raises(EvidenceError, match="not a centre's state folder"):
        export(tmp_path / "used", "INC-000001", tmp_path / "b3", actor="cli:test",
               source="cli")
    # An empty folder is fine, and an alarm key names the incident as well as its reference.
    empty = tmp_path / "empty"
    empty.mkdir()
    export(small_centre, Message.event_key(BID, 2, 9), empty, actor="cli:test", source="cli")
    report = verify(empty, public_key=signing_key(small_centre).public_key,
                    centre_keys={BID: CENTRE_KEY})
    assert report.ok, report.checks
    assert _load(empty, MANIFEST)["incident"] == "INC-000001" and _audit_count(small_centre) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_the_signing_key_is_made_once_private_and_never_replaced(tmp_path: Path) -> None:
    first = signing_key(tmp_path)
    again = signing_key(tmp_path)
    assert first.public_key == again.public_key and len(first.public_key) == 32
    path = key_path(tmp_path)
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert first.public_key.hex() not in repr(first) and "PRIVATE" not in repr(first)
    groups = first.fingerprint.split(":")
    assert len(groups) == 8 and all(len(g) == 4 for g in groups)
    assert first.fingerprint.replace(":", "") == \
        hashlib.sha256(first.public_key).hexdigest()[:32]
    os.chmod(path, 0o640)
    with pytest.raises(EvidenceError, match="readable by others"):
        signing_key(tmp_path)
    os.chmod(path, 0o600)
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n")
    with pytest.raises(EvidenceError, match="not an unencrypted PKCS8 PEM"):
        signing_key(tmp_path)
    assert path.read_bytes().endswith(b"garbage\n")  # refused, not replaced
    with pytest.raises(EvidenceError, match="no such state folder"):
        signing_key(tmp_path / "missing")
