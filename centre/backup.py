"""Proven backups of the centre's state folder, taken while the centre runs: every database
(registry.db, records.db, audit.db, any *.db) copied with SQLite's online backup API, plus the
small files of tls/ and signing/, in ONE tar file (0600) with a manifest (format, time, every
member's SHA-256 and size, the audit head and counts), and the restore that refuses anything
but such a file, intact to the byte, into a folder that holds nothing yet.

The file is as secret as the state folder (button keys, case files, the centre's private keys):
keep it where the folder may be, or encrypted. Its checks find damage and mistakes, not a
forger: nothing in it is keyed (the audit head in the manifest is what to compare elsewhere).

The file's format and its strict readers: centre/backup_format.py.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .audit import AuditLog
from .backup_format import (AUDIT_DB, FOLDERS, MANIFEST, MANIFEST_SUM, PART, Manifest,
                            Member, Sink, extract, file_sha256, member_name_ok, next_member,
                            read_small, write_tar)
from .errors import AuditError, BackupError

SUBJECT = "centre"  # the backup and restore entries' subject: the state as a whole
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BackupInfo:
    file: Path
    manifest: Manifest


@dataclass(frozen=True)
class RestoreInfo:
    state_dir: Path
    manifest: Manifest
    restore_seq: int  # the "restore" audit entry's seq


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _scalar(db: sqlite3.Connection, sql: str, table: str) -> int:
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                  (table,)).fetchone() is None:
        return 0
    return int(db.execute(sql).fetchone()[0])


def _integrity(path: Path) -> None:
    """ValueError unless SQLite finds the database whole."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        found = db.execute("PRAGMA integrity_check").fetchall()
    finally:
        db.close()
    if found != [("ok",)]:
        raise ValueError(f"{path.name} fails SQLite's integrity check: {found[:3]}")


def _counts(folder: Path) -> tuple[int, int, int, str, int]:
    """(incidents, alarms, audit count, audit hash hex, audit entries held) of a folder's
    copies; ValueError when its audit log does not verify."""
    incidents = alarms = 0
    if (folder / "records.db").exists():
        db = sqlite3.connect(folder / "records.db")
        try:
            incidents = _scalar(db, "SELECT COUNT(*) FROM incidents", "incidents")
            alarms = _scalar(db, "SELECT COUNT(*) FROM messages WHERE kind = 'alarm'",
                             "messages")
        finally:
            db.close()
    audit = AuditLog(folder / AUDIT_DB)
    try:
        found = audit.verify()
        if not found.ok:
            raise ValueError(f"its audit log does not verify at seq {found.first_bad_seq}:"
                             f" {found.reason}")
        count, digest = audit.head()
    finally:
        audit.close()
    return incidents, alarms, count, digest.hex(), found.entries


@contextmanager
def _scratch(near: Path, prefix: str) -> Iterator[Path]:
    """A private folder beside `near` (same file system: a rename moves it), removed after."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=near.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def backup(state_dir: Path, out_file: Path, *, actor: str, source: str,
           progress: Progress | None = None) -> BackupInfo:
    """Backs up the state folder of a centre that may be running (in another process) into
    `out_file`, which must not exist. The "backup" audit entry is appended first, so the
    backup holds it. BackupError (and no file) for anything that goes wrong."""
    state_dir, out_file = Path(state_dir), Path(out_file)
    say = progress or (lambda _line: None)
    if out_file.exists() or out_file.is_symlink():
        raise BackupError(str(out_file), "exists already: a backup never overwrites a file;"
                          " choose a new name")
    if not out_file.parent.is_dir():
        raise BackupError(str(out_file), f"no folder {out_file.parent} to write it in")
    databases = sorted(p for p in state_dir.glob("*.db") if p.is_file()
                       and not p.is_symlink()) if state_dir.is_dir() else []
    if not any(p.name == "registry.db" for p in databases):
        raise BackupError(str(state_dir), "no registry.db: not a centre's state folder")
    try:
        audit = AuditLog(state_dir / AUDIT_DB)
        try:
            found = audit.verify()  # a broken log would only be refused at restore
            if not found.ok:
                raise BackupError(str(state_dir), f"its audit log does not verify at seq"
                                  f" {found.first_bad_seq} ({found.reason}): find out why"
                                  " first (msa centre audit verify); to keep the evidence,"
                                  " copy the folder of the stopped centre as it is")
            audit.append(actor, "backup", SUBJECT, source, {"file": out_file.name})
        finally:
            audit.close()
    except AuditError as exc:
        raise BackupError(str(out_file), f"the backup entry was refused: {exc}") from exc
    if not any(p.name == AUDIT_DB for p in databases):
        databases = sorted([*databases, state_dir / AUDIT_DB])
    try:
        with _scratch(out_file, f".{out_file.name}.") as scratch:
            return _backup_into(state_dir, out_file, databases, scratch, say)
    except (OSError, sqlite3.Error, tarfile.TarError, ValueError, AuditError) as exc:
        raise BackupError(str(out_file), f"{type(exc).__name__}: {exc}") from exc


def _backup_into(state_dir: Path, out_file: Path, databases: list[Path], scratch: Path,
                 say: Progress) -> BackupInfo:
    files: list[tuple[str, Path]] = []
    for path in databases:
        copy = scratch / path.name
        src = sqlite3.connect(path, timeout=30)
        dst = sqlite3.connect(copy, isolation_level=None)
        try:
            src.backup(dst)  # one step: a single read snapshot, writers go on (WAL)
        finally:
            dst.close()
            src.close()
        files.append((path.name, copy))
    incidents, alarms, count, digest, held = _counts(scratch)  # of the copies
    for name, copy in files:
        db = sqlite3.connect(copy, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=DELETE")  # one self-contained file each
        finally:
            db.close()
        _integrity(copy)
        say(f"{name}: {copy.stat().st_size:,} bytes copied, integrity ok")
    for folder in FOLDERS:
        if not (state_dir / folder).is_dir():
            continue
        (scratch / folder).mkdir(mode=0o700)
        for path in sorted((state_dir / folder).iterdir()):
            if path.is_file() and not path.is_symlink():
                if not PART.fullmatch(path.name):
                    raise ValueError(f"{folder}/{path.name}: a name no backup may hold")
                # Copied first, so the bytes hashed are the bytes written.
                shutil.copyfile(path, scratch / folder / path.name)
                files.append((f"{folder}/{path.name}", scratch / folder / path.name))
    members = tuple(Member(name, file_sha256(p), p.stat().st_size) for name, p in files)
    manifest = Manifest(time.time(), members, count, digest, incidents, alarms, held)
    partial = scratch / "backup.tar"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as out:
        write_tar(out, manifest.to_bytes(), files, manifest.created_at)
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(partial, out_file)  # never replaces a file made meanwhile, unlike rename
    except FileExistsError:
        raise BackupError(str(out_file), "appeared while the backup was written: it was"
                          " left alone; choose a new name") from None
    _fsync(out_file.parent)
    say(f"{out_file}: {len(members)} files, {incidents} incidents, {alarms} alarms,"
        f" {held} audit entries (head {count}, {digest[:16]}...)")
    return BackupInfo(out_file, manifest)


def restore(backup_file: Path, state_dir: Path, *, actor: str, source: str,
            progress: Progress | None = None) -> RestoreInfo:
    """Restores a backup into `state_dir`, which must not exist or be empty, after checking
    every byte of it; appends the "restore" audit entry. BackupError, with nothing left
    behind, for anything else: a file changed, cut short or made by something else."""
    backup_file, state_dir = Path(backup_file), Path(state_dir)
    say = progress or (lambda _line: None)
    if state_dir.is_symlink() or (state_dir.exists() and (
            not state_dir.is_dir() or any(state_dir.iterdir()))):
        raise BackupError(str(state_dir), "is not empty: restore never overwrites a state"
                          " folder (stop the centre and restore into a new folder)")
    if not backup_file.is_file():
        raise BackupError(str(backup_file), "no such backup file")
    if not state_dir.parent.is_dir():
        raise BackupError(str(state_dir), f"no folder {state_dir.parent} to restore into:"
                          " make it first")
    try:
        with _scratch(state_dir, f".{state_dir.name}.restore-") as scratch:
            manifest = _unpack(backup_file, scratch, say)
            _check_restored(scratch, manifest, say)
            audit = AuditLog(scratch / AUDIT_DB)
            try:
                entry = audit.append(actor, "restore", SUBJECT, source, {
                    "file": backup_file.name, "backup_created_at": manifest.created_at,
                    "backup_audit_count": manifest.audit_count})
            finally:
                audit.close()
            _seal(scratch)
            os.rename(scratch, state_dir)  # replaces an empty folder; refuses a full one
    except tarfile.TarError as exc:
        raise BackupError(str(backup_file), f"refused, nothing restored: not a whole tar"
                          f" file (cut short or damaged: {exc})") from exc
    except (OSError, sqlite3.Error, ValueError, AuditError, EOFError) as exc:
        raise BackupError(str(backup_file), f"refused, nothing restored: {exc}") from exc
    _fsync(state_dir.parent)
    say(f"{state_dir}: {len(manifest.members)} files, {manifest.incidents} incidents,"
        f" {manifest.alarms} alarms, {manifest.audit_entries} audit entries restored")
    return RestoreInfo(state_dir, manifest, entry.seq)


def _unpack(backup_file: Path, scratch: Path, say: Progress) -> Manifest:
    """Extracts and checks every member into `scratch`; ValueError (or tarfile's, OSError's)
    for the first thing wrong."""
    with open(backup_file, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
        raw = read_small(tar, MANIFEST)
        manifest = Manifest.parse(raw)
        if read_small(tar, MANIFEST_SUM) != (hashlib.sha256(raw).hexdigest() + "\n").encode():
            raise ValueError("manifest.sha256 does not match the manifest")
        names = [m.name for m in manifest.members]
        if len(set(names)) != len(names) or not all(member_name_ok(n) for n in names) \
                or AUDIT_DB not in names or {MANIFEST, MANIFEST_SUM} & set(names):
            raise ValueError("the manifest lists names no backup holds")
        files: list[tuple[str, Path]] = []
        for member in manifest.members:
            ti = next_member(tar, member.name)
            if ti.size != member.size:
                raise ValueError(f"{member.name} is {ti.size} bytes, the manifest says"
                                 f" {member.size}")
            path = scratch / member.name
            if "/" in member.name:
                path.parent.mkdir(mode=0o700, exist_ok=True)
            digest = extract(tar, ti, path)
            if digest != member.sha256:
                raise ValueError(f"{member.name} does not match its SHA-256 in the manifest:"
                                 " the backup was altered or damaged")
            files.append((member.name, path))
        extra = tar.next()
        if extra is not None:
            raise ValueError(f"member {extra.name!r} is not in the manifest")
    rebuilt = Sink()
    write_tar(rebuilt, raw, files, manifest.created_at)
    if (rebuilt.size, rebuilt.hash.hexdigest()) != (backup_file.stat().st_size,
                                                    file_sha256(backup_file)):
        raise ValueError("the file is not byte for byte the archive msa wrote (a header,"
                         " padding or its end was changed, or it was cut short)")
    say(f"{backup_file.name}: {len(files)} files, every SHA-256 matches")
    return manifest


def _check_restored(scratch: Path, manifest: Manifest, say: Progress) -> None:
    for member in manifest.members:
        if member.name.endswith(".db"):
            _integrity(scratch / member.name)
            say(f"{member.name}: integrity ok")
    incidents, alarms, count, digest, held = _counts(scratch)
    found = (incidents, alarms, count, digest, held)
    said = (manifest.incidents, manifest.alarms, manifest.audit_count, manifest.audit_hash,
            manifest.audit_entries)
    if found != said:
        raise ValueError(f"the databases hold {found}, the manifest says {said}")
    say(f"{AUDIT_DB}: {held} entries verify, head {count} as at backup")


def _seal(folder: Path) -> None:
    """0700 folders, 0600 files, everything on disk before the rename makes it the state."""
    for path in sorted(folder.rglob("*"), reverse=True):
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
        _fsync(path)
    os.chmod(folder, 0o700)
    _fsync(folder)
