"""The msa backup file's format (msa-backup-1): a USTAR archive of manifest.json,
manifest.sha256 and the state folder's files, written by one writer (write_tar) that both makes
a backup and, fed what a restore read, rebuilds it to compare byte for byte; and the strict
readers of its members. See centre/backup.py for what is backed up and how it is restored.

Layout: every member 0600, uid 0, owned by "", its mtime the manifest's created_at:
manifest.json, manifest.sha256 (the manifest's SHA-256, hex and a newline), then the members
in the manifest's order. A restore rebuilds the archive from what it read with write_tar and
compares the whole file's SHA-256, so a byte changed anywhere (a header, padding, the end
blocks, the manifest) is refused, not only one in a member's data. Python's tarfile writes the
USTAR headers: if a later Python wrote them differently, older backups would be refused with
"not byte for byte" (restore them with the Python that wrote them), never restored wrongly."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

FORMAT = "msa-backup-1"
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.sha256"
FOLDERS = ("tls", "signing")  # the private CA, the centre's signing key: files only
AUDIT_DB = "audit.db"
# One part of a member's path: no "..", no "/", nothing hidden.
PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", re.ASCII)
_CHUNK = 1 << 20
_SMALL_MAX = 1 << 20  # the manifest and its sum are read into memory: bounded


@dataclass(frozen=True)
class Member:
    """One file in the backup: its path in the state folder, SHA-256 (hex) and size."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """What a backup holds, as manifest.json says."""

    created_at: float
    members: tuple[Member, ...]
    audit_count: int  # the audit head at backup time: the count and hash to compare
    audit_hash: str
    incidents: int
    alarms: int  # accepted alarm messages (records.db messages of kind "alarm")
    audit_entries: int  # entries held (fewer than audit_count once pruned)

    def to_bytes(self) -> bytes:
        return (json.dumps({
            "format": FORMAT, "created_at": self.created_at,
            "members": [{"name": m.name, "sha256": m.sha256, "size": m.size}
                        for m in self.members],
            "audit_head": {"count": self.audit_count, "hash": self.audit_hash},
            "counts": {"incidents": self.incidents, "alarms": self.alarms,
                       "audit_entries": self.audit_entries}},
            sort_keys=True, indent=1, allow_nan=False) + "\n").encode("ascii")

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        """ValueError saying what is wrong with anything but a manifest to_bytes() wrote."""
        obj = json.loads(raw.decode("ascii"), parse_constant=_no_constant)
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} manifest")
        head, counts = obj.get("audit_head"), obj.get("counts")
        if not isinstance(head, dict) or not isinstance(counts, dict) \
                or not isinstance(obj.get("members"), list):
            raise ValueError("the manifest lacks members, audit_head or counts")
        members = tuple(Member(_str(m, "name"), _str(m, "sha256"), _int(m, "size"))
                        for m in obj["members"])
        created = obj.get("created_at")
        if isinstance(created, bool) or not isinstance(created, (int, float)):
            raise ValueError("created_at is no time")
        manifest = cls(float(created), members, _int(head, "count"), _str(head, "hash"),
                       _int(counts, "incidents"), _int(counts, "alarms"),
                       _int(counts, "audit_entries"))
        if manifest.to_bytes() != raw:
            raise ValueError("the manifest is not written as msa writes one")
        return manifest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} in the manifest")


def _str(obj: object, key: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _int(obj: object, key: str) -> int:
    value = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a whole number >= 0")
    return value


def member_name_ok(name: str) -> bool:
    """A name a backup may hold: a top-level *.db, the manifest and its sum, or one file in
    tls/ or signing/ (never absolute, never "..", never deeper)."""
    parts = name.split("/")
    if len(parts) == 1:
        return bool(PART.fullmatch(name)) and (name.endswith(".db")
                                                or name in (MANIFEST, MANIFEST_SUM))
    return len(parts) == 2 and parts[0] in FOLDERS and bool(PART.fullmatch(parts[1]))


class Sink:
    """A write-only file that only hashes (the archive rebuilt to compare with the file)."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size


def write_tar(out: Any, manifest_bytes: bytes, files: list[tuple[str, Path]],
               mtime: float) -> None:
    """The archive: msa's one writer, used to make a backup and to check one."""
    def info(name: str, size: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.size, ti.mtime, ti.mode, ti.type = size, int(mtime), 0o600, tarfile.REGTYPE
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti
    digest = (hashlib.sha256(manifest_bytes).hexdigest() + "\n").encode("ascii")
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info(MANIFEST, len(manifest_bytes)), io.BytesIO(manifest_bytes))
        tar.addfile(info(MANIFEST_SUM, len(digest)), io.BytesIO(digest))
        for name, path in files:
            with open(path, "rb") as f:
                tar.addfile(info(name, os.fstat(f.fileno()).st_size), f)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def next_member(tar: tarfile.TarFile, expected: str) -> tarfile.TarInfo:
    ti = tar.next()
    if ti is None:
        raise ValueError(f"the backup ends before {expected}: it was cut short")
    name = ti.name
    if name.startswith("/") or os.path.isabs(name):
        raise ValueError(f"member {name!r} refused: an absolute path")
    if ".." in name.split("/"):
        raise ValueError(f"member {name!r} refused: it climbs out of the folder")
    if ti.issym() or ti.islnk():
        raise ValueError(f"member {name!r} refused: a link")
    if ti.type != tarfile.REGTYPE or not member_name_ok(name):
        raise ValueError(f"member {name!r} refused: not a file a backup holds")
    if name != expected:
        raise ValueError(f"member {name!r} found where {expected!r} belongs")
    return ti


def read_small(tar: tarfile.TarFile, name: str) -> bytes:
    ti = next_member(tar, name)
    if ti.size > _SMALL_MAX:
        raise ValueError(f"{name} is {ti.size} bytes: not a manifest")
    src = tar.extractfile(ti)
    assert src is not None  # a regular file (_next)
    data = src.read()
    if len(data) != ti.size:
        raise ValueError(f"{name} is cut short")
    return data


def extract(tar: tarfile.TarFile, ti: tarfile.TarInfo, path: Path) -> str:
    src: IO[bytes] | None = tar.extractfile(ti)
    assert src is not None  # a regular file (_next)
    h = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        left = ti.size
        while left:
            chunk = src.read(min(_CHUNK, left))
            if not chunk:
                raise ValueError(f"{ti.name} is cut short")
            h.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return h.hexdigest()
