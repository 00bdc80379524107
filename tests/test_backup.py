"""Backups that are proven (issue 15, part 5): a real centre under load (alarms posted over its
HTTPS API, audit entries appended by another connection) is backed up from a thread, as
another process would; the backup restores into a new folder, a centre started on it holds
every alarm acknowledged and every audit entry committed before the backup began, answers with
the backed-up TLS certificate and host credentials, and its audit log verifies. Every damaged,
altered or hostile file is refused and leaves nothing behind."""
from __future__ import annotations

import asyncio
import hashlib
import http.client
import io
import json
import os
import shutil
import sqlite3
import ssl
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "hostile"))

from hostile_kit import Live, alarm, key  # noqa: E402

from msa.centre.audit import AuditLog  # noqa: E402
from msa.centre.backup import SUBJECT, backup, restore  # noqa: E402
from msa.centre.backup_format import (MANIFEST, MANIFEST_SUM, Manifest,  # noqa: E402
                                      member_name_ok, write_tar)
from msa.centre.errors import BackupError  # noqa: E402
from msa.centre.server import CentreConfig, start_centre  # noqa: E402
from msa.tools.cli_backup import backup_command, restore_command  # noqa: E402
from msa.wire.api import body  # noqa: E402

ACTOR, SOURCE = "cli:tester", "cli"
LOAD_BEFORE = 15  # alarms ACKed and audit entries committed before the backup starts


def _post(port: int, context: ssl.SSLContext, token: str, payload: dict[str, Any]
          ) -> int:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    try:
        conn.request("POST", "/v1/alarms", body=json.dumps(payload),
                     headers={"Content-Type": "application/json",
                              "Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


class _Load:
    """Posts alarms (one thread) and appends audit entries (another) until stopped, noting
    each one the centre acknowledged or committed, in order."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.acked: list[int] = []  # alarm seqs answered 201
        self.entries: list[tuple[int, bytes]] = []  # (seq, hash) committed
        self.stop = threading.Event()
        self.warm = threading.Event()  # both have done LOAD_BEFORE
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._guard, args=(f,))
                        for f in (self._alarms, self._audit)]

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.errors.append(exc)
            self.warm.set()

    def _check_warm(self) -> None:
        if len(self.acked) >= LOAD_BEFORE and len(self.entries) >= LOAD_BEFORE:
            self.warm.set()

    def _alarms(self) -> None:
        seq = 0
        while not self.stop.is_set():
            seq += 1
            status, text = self.live.send(alarm(seq))
            assert status == 201, (status, text)
            self.acked.append(seq)
            self._check_warm()

    def _audit(self) -> None:
        audit = AuditLog(self.live.root / "audit.db")
        try:
            i = 0
            while not self.stop.is_set():
                i += 1
                e = audit.append("alice", "case.view", "C-H", "10.0.0.7", {"i": i})
                self.entries.append((e.seq, e.hash))
                self._check_warm()
        finally:
            audit.close()

    def __enter__(self) -> _Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


def test_backup_under_load_restores_every_acknowledged_alarm_and_audit_entry(
        tmp_path: Path) -> None:
    live = Live(tmp_path / "centre")
    try:
        with _Load(live) as load:
            assert load.warm.wait(120) and not load.errors, load.errors
            acked_before, entries_before = list(load.acked), list(load.entries)
            done: list[Any] = []
            worker = threading.Thread(target=lambda: done.append(backup(
                live.root, tmp_path / "centre.tar", actor=ACTOR, source=SOURCE)))
            worker.start()
            worker.join(120)
            during = (len(load.acked) - len(acked_before),
                      len(load.entries) - len(entries_before))
        assert not load.errors, load.errors
        assert done, "the backup did not finish"
        token, context = live.token, live.ssl
    finally:
        live.close()
    info = done[0]
    assert info.manifest.alarms >= len(acked_before)
    assert info.manifest.audit_entries > len(entries_before)  # and the backup entry

    restored = tmp_path / "restored"
    got = restore(tmp_path / "centre.tar", restored, actor=ACTOR, source=SOURCE)
    assert (restored.stat().st_mode & 0o777) == 0o700
    assert all((p.stat().st_mode & 0o777) == (0o700 if p.is_dir() else 0o600)
               for p in restored.rglob("*"))

    audit = AuditLog(restored / "audit.db")
    try:
        assert audit.verify().ok, audit.verify().reason
        held = {e.seq: e for e in audit.entries()}
    finally:
        audit.close()
    assert all(held[seq].hash == digest for seq, digest in entries_before)
    mine = [e for e in held.values() if e.action == "backup"]
    assert [(e.actor, e.subject, e.detail) for e in mine] == [
        (ACTOR, SUBJECT, {"file": "centre.tar"})]
    assert held[max(held)].action == "restore" and max(held) == got.restore_seq

    async def check() -> tuple[set[str], int, int]:
        running = await start_centre(CentreConfig(state_dir=restored))
        try:
            keys = {str(i["key"]) for i in running.centre.incidents(include_resolved=True)}
            # The restored centre presents the backed-up certificate (the old CA verifies
            # it) and knows the host's token: an old alarm is a duplicate, a new one is new.
            again = await asyncio.to_thread(_post, running.api_port, context, token,
                                            body(alarm(acked_before[0])))
            new = await asyncio.to_thread(_post, running.api_port, context, token,
                                          body(alarm(10_000)))
            return keys, again, new
        finally:
            await running.stop()

    keys, again, new = asyncio.run(check())
    assert {key(seq) for seq in acked_before} <= keys
    assert (again, new) == (200, 201)
    print(f"under load: {len(acked_before)} alarms and {len(entries_before)} entries before"
          f" the backup, {during[0]} alarms and {during[1]} entries while it ran")


# --- refusals ---

@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A backup of a centre that ran: a registry, records with alarms, TLS, an audit log."""
    root = tmp_path_factory.mktemp("made")
    live = Live(root / "centre")
    try:
        for seq in (1, 2, 3):
            assert live.send(alarm(seq))[0] == 201
    finally:
        live.close()
    (root / "centre" / "signing").mkdir(mode=0o700)
    (root / "centre" / "signing" / "centre-ed25519.pem").write_bytes(b"not a real key\n")
    backup(root / "centre", root / "b.tar", actor=ACTOR, source=SOURCE)
    yield root / "b.tar"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_backup_never_overwrites_a_file(made: Path, tmp_path: Path) -> None:
    state = made.parent / "centre"
    out = tmp_path / "exists.tar"
    out.write_bytes(b"precious")
    audit = AuditLog(state / "audit.db")
    head = audit.head()
    with pytest.raises(BackupError, match="exists already"):
        backup(state, out, actor=ACTOR, source=SOURCE)
    assert out.read_bytes() == b"precious" and audit.head() == head  # no entry either
    audit.close()
    assert _leftovers(tmp_path) == ["exists.tar"]


def test_a_backup_of_a_folder_without_registry_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no registry.db"):
        backup(tmp_path, tmp_path / "b.tar", actor=ACTOR, source=SOURCE)
    assert _leftovers(tmp_path) == []


def test_a_backup_of_a_broken_audit_log_is_refused_and_leaves_no_file(
        made: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    restore(made, state, actor=ACTOR, source=SOURCE)
    db = sqlite3.connect(state / "audit.db")
    db.execute("UPDATE entries SET actor = 'mallory' WHERE seq = 1")
    db.commit()
    db.close()
    audit = AuditLog(state / "audit.db")
    head = audit.head()
    with pytest.raises(BackupError, match="does not verify at seq 1"):
        backup(state, tmp_path / "b.tar", actor=ACTOR, source=SOURCE)
    assert _leftovers(tmp_path) == ["state"] and audit.head() == head  # and no entry
    audit.close()


@pytest.mark.parametrize("kind", ["file", "full folder", "link to an empty folder"])
def test_restore_never_writes_into_something_that_exists(made: Path, tmp_path: Path,
                                                         kind: str) -> None:
    target = tmp_path / "target"
    if kind == "file":
        target.write_text("x")
    elif kind == "full folder":
        target.mkdir()
        (target / "registry.db").write_text("live")
    else:
        (tmp_path / "empty").mkdir()
        target.symlink_to(tmp_path / "empty")
    before = {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")}
    with pytest.raises(BackupError, match="not empty"):
        restore(made, target, actor=ACTOR, source=SOURCE)
    assert {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")} == before


def test_restore_into_an_empty_folder_works(made: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    got = restore(made, tmp_path / "empty", actor=ACTOR, source=SOURCE)
    assert (tmp_path / "empty" / "signing" / "centre-ed25519.pem").read_bytes() == \
        b"not a real key\n"
    assert got.manifest.incidents == 3 and got.manifest.alarms == 3
    assert _leftovers(tmp_path) == ["empty"]


def _positions(data: bytes) -> list[int]:
    """Where to change a byte: every header and its checksum's last byte, the start, middle
    and end of every member's data and of its padding, the end blocks, and an even spread."""
    out = set(range(0, len(data), max(1, len(data) // 97)))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for ti in tar.getmembers():
            out |= {ti.offset, ti.offset + 100, ti.offset + 155, ti.offset + 300}
            end = ti.offset_data + ti.size
            out |= {ti.offset_data, ti.offset_data + ti.size // 2, end - 1}
            if end % 512:
                out |= {end, end + (512 - end % 512) - 1}
    out |= {len(data) - 1, len(data) - 1024, len(data) - 513}
    return sorted(p for p in out if 0 <= p < len(data))


def test_any_byte_changed_is_refused_and_nothing_is_restored(made: Path,
                                                             tmp_path: Path) -> None:
    data = made.read_bytes()
    positions = _positions(data)
    assert len(positions) > 150
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 0x20
        (tmp_path / "bad.tar").write_bytes(bad)
        with pytest.raises(BackupError, match="refused, nothing restored"):
            restore(tmp_path / "bad.tar", tmp_path / "target", actor=ACTOR, source=SOURCE)
        assert _leftovers(tmp_path) == ["bad.tar"], pos


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.01, 0.3, 0.5, 0.9, 0.999])
def test_a_truncated_backup_is_refused(made: Path, tmp_path: Path, fraction: float) -> None:
    data = made.read_bytes()
    for cut in {int(len(data) * fraction), len(data) - 1, len(data) - 512}:
        (tmp_path / "cut.tar").write_bytes(data[:cut])
        with pytest.raises(BackupError, match="refused, nothing restored"):
            restore(tmp_path / "cut.tar", tmp_path / "target", actor=ACTOR, source=SOURCE)
        assert _leftovers(tmp_path) == ["cut.tar"]


def _manifest(made: Path) -> bytes:
    with tarfile.open(made) as tar:
        f = tar.extractfile(MANIFEST)
        assert f is not None
        return f.read()


def _hostile(made: Path, out: Path, member: tarfile.TarInfo, data: bytes = b"") -> None:
    """The genuine manifest and its sum, then a member of the attacker's choosing."""
    raw = _manifest(made)
    digest = (hashlib.sha256(raw).hexdigest() + "\n").encode()
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, blob in ((MANIFEST, raw), (MANIFEST_SUM, digest)):
            ti = tarfile.TarInfo(name)
            ti.size = len(blob)
            tar.addfile(ti, io.BytesIO(blob))
        member.size = len(data) if member.isreg() else 0
        tar.addfile(member, io.BytesIO(data) if member.isreg() else None)


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = kind, link
    return ti


@pytest.mark.parametrize("member, why", [
    (_member("../x"), "climbs out"),
    (_member("tls/../../x"), "climbs out"),
    (_member("/tmp/x"), "absolute"),
    (_member("audit.db", tarfile.SYMTYPE, "/etc/passwd"), "a link"),
    (_member("audit.db", tarfile.LNKTYPE, "manifest.json"), "a link"),
    (_member("tls", tarfile.DIRTYPE), "not a file a backup holds"),
    (_member("audit.db", tarfile.FIFOTYPE), "not a file a backup holds"),
    (_member("run.sh"), "not a file a backup holds"),
    (_member("tls/sub/x.pem"), "not a file a backup holds"),
    (_member(".hidden.db"), "not a file a backup holds"),
    (_member("registry.db"), "found where 'audit.db' belongs"),
])
def test_hostile_members_are_refused(made: Path, tmp_path: Path, member: tarfile.TarInfo,
                                     why: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _hostile(made, work / "evil.tar", member, b"owned\n")
    with pytest.raises(BackupError, match=why):
        restore(work / "evil.tar", work / "target", actor=ACTOR, source=SOURCE)
    assert _leftovers(work) == ["evil.tar"] and _leftovers(tmp_path) == ["work"]


def _forged(made: Path, tmp_path: Path, edit: Any, manifest_edit: Any = None) -> Path:
    """A backup whose sums all match but whose content is wrong: what restore's own checks
    (integrity, audit chain, counts), not the SHA-256s, must catch."""
    folder = tmp_path / "unpacked"
    with tarfile.open(made) as tar:
        tar.extractall(folder, filter="data")
    m = Manifest.parse((folder / MANIFEST).read_bytes())
    edit(folder)
    members = tuple(type(x)(x.name, hashlib.sha256((folder / x.name).read_bytes())
                            .hexdigest(), (folder / x.name).stat().st_size) for x in m.members)
    fields = dict(m.__dict__, members=members)
    if manifest_edit is not None:
        manifest_edit(fields)
    forged = Manifest(**fields)
    out = tmp_path / "forged.tar"
    with open(out, "wb") as f:
        write_tar(f, forged.to_bytes(), [(x.name, folder / x.name) for x in members],
                  forged.created_at)
    shutil.rmtree(folder)
    return out


def _sql(path: Path, sql: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(sql)
    db.close()


@pytest.mark.parametrize("edit, manifest_edit, why", [
    (lambda f: _sql(f / "audit.db", "UPDATE entries SET actor = 'mallory' WHERE seq = 1"),
     None, "audit log does not verify at seq 1"),
    (lambda f: _sql(f / "records.db", "DELETE FROM incidents WHERE id = 2"), None,
     "the manifest says"),
    (lambda f: None, lambda m: m.update(alarms=m["alarms"] + 1), "the manifest says"),
    (lambda f: None, lambda m: m.update(audit_hash="00" * 32), "the manifest says"),
    (lambda f: (f / "registry.db").write_bytes((f / "registry.db").read_bytes()[:4096]),
     None, "integrity|malformed|not a database"),
])
def test_forged_content_with_matching_sums_is_refused(made: Path, tmp_path: Path, edit: Any,
                                                      manifest_edit: Any, why: str) -> None:
    forged = _forged(made, tmp_path, edit, manifest_edit)
    with pytest.raises(BackupError, match=why):
        restore(forged, tmp_path / "target", actor=ACTOR, source=SOURCE)
    assert _leftovers(tmp_path) == ["forged.tar"]


def test_an_untouched_forgery_restores_so_the_forger_is_real(made: Path,
                                                             tmp_path: Path) -> None:
    # The control for the table above: re-packing without an edit is accepted.
    forged = _forged(made, tmp_path, lambda f: None)
    assert forged.read_bytes() == made.read_bytes()
    restore(forged, tmp_path / "target", actor=ACTOR, source=SOURCE)


@pytest.mark.parametrize("name, ok", [
    ("registry.db", True), ("tls/ca.pem", True), ("signing/centre-ed25519.pem", True),
    ("manifest.json", True), ("x.txt", False), ("../registry.db", False), ("/a.db", False),
    ("tls/../a.db", False), ("tls/", False), ("other/a.pem", False), ("tls/a/b", False),
    ("..db", False), ("a\\..\\b.db", False), ("", False),
])
def test_member_names(name: str, ok: bool) -> None:
    assert member_name_ok(name) is ok


# --- the commands ---

def test_the_commands_back_up_and_restore_and_say_what(made: Path, tmp_path: Path) -> None:
    state = made.parent / "centre"
    runner = CliRunner()
    out = runner.invoke(backup_command, ["--state-dir", str(state), "--out",
                                         str(tmp_path / "c.tar")])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["audit.db", "records.db",
                                                         "registry.db"]
    assert "3 incidents, 3 accepted alarms" in lines[-1]
    assert (tmp_path / "c.tar").stat().st_mode & 0o777 == 0o600
    back = runner.invoke(restore_command, ["--from", str(tmp_path / "c.tar"), "--state-dir",
                                           str(tmp_path / "new")])
    assert back.exit_code == 0, back.output
    assert "3 incidents, 3 accepted alarms" in back.output.splitlines()[-1]
    again = runner.invoke(restore_command, ["--from", str(tmp_path / "c.tar"), "--state-dir",
                                            str(tmp_path / "new")])
    assert isinstance(again.exception, BackupError) and "not empty" in str(again.exception)
    audit = AuditLog(tmp_path / "new" / "audit.db")
    try:
        last = audit.entries()[-1]
    finally:
        audit.close()
    assert (last.action, last.source, last.actor.startswith("cli:")) == ("restore", "cli", True)
    assert sorted(os.listdir(tmp_path)) == ["c.tar", "new"]


def test_restore_into_a_folder_whose_parent_is_missing_is_refused(made: Path,
                                                                   tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="make it first"):
        restore(made, tmp_path / "no" / "state", actor=ACTOR, source=SOURCE)
    assert _leftovers(tmp_path) == []
