"""Checks an evidence bundle (centre/evidence.py says what one holds) on its own, on any machine:
reads only the bundle's folder, and turns every fault of a hostile or damaged bundle (a missing
file, bad JSON, a wrong type, a flipped bit) into a failed check, never an exception.

Checks, in order: "signature" (manifest.sig over manifest.json's exact bytes, with the pinned
key if one is given), "files" (each listed file there, none unlisted, each SHA-256 as listed),
"audit" (each entry's hash recomputes, consecutive entries link, the head is well formed),
"export entry" (the excerpt's last incident.export names these files and the manifest's
exporter; not the folder's name, which a copy may change), "frames" (each frame's
centre tag with the button's K_c, and its button, boot and seq match its key) and "timeline"
(timeline.json holds the same frames as frames.json).
"""
from __future__ import annotations

import hashlib
import json
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from msa.wire.errors import FrameError
from msa.wire.message import UPDATE_SUFFIX
from msa.wire.protocol import CentreKey, verify_centre

from .audit import entry_hash
from .signing import PUBLIC_KEY_LEN, fingerprint, signature_ok

FORMAT = "msa-evidence-1"
TIMELINE_FORMAT = "msa-timeline-1"
EXPORT_ACTION = "incident.export"
TIMELINE, FRAMES, AUDIT, REPORT = "timeline.json", "frames.json", "audit.json", "report.html"
MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
BUNDLE_FILES = (TIMELINE, FRAMES, AUDIT, REPORT)
MAX_FILE_BYTES = 256 << 20  # far above any incident's record: refuse to read a hostile giant
_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", re.ASCII)
_FRAME_COMPARED = ("key", "channel", "received_at", "frame_hex")


class Check(NamedTuple):
    """One verify() finding: what was checked, whether it held, and what was found."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Report:
    """verify()'s answer: ok only if every check held."""

    ok: bool
    checks: list[Check]


class _Bad(Exception):
    """A fault of the bundle: becomes the failed check's detail."""


def content_digest(files: dict[str, str]) -> str:
    """What the export's audit entry names: SHA-256 over the manifest's file list (name ->
    SHA-256 hex) without audit.json, as compact sorted JSON."""
    listed = {name: digest for name, digest in files.items() if name != AUDIT}
    text = json.dumps(listed, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _read(folder: Path, name: str) -> bytes:
    path = folder / name
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            raise _Bad(f"{name} is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise _Bad(f"{name} is {info.st_size} bytes, more than any bundle holds")
        return path.read_bytes()
    except FileNotFoundError:
        raise _Bad(f"{name} is missing") from None
    except OSError as exc:
        raise _Bad(f"cannot read {name}: {exc.strerror or exc}") from None


def _json(data: bytes, name: str) -> dict[str, Any]:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Bad(f"{name} is not JSON: {type(exc).__name__}") from None
    if not isinstance(obj, dict):
        raise _Bad(f"{name} is not a JSON object")
    return obj


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise _Bad(f"{where}: {name!r} is missing or of the wrong type")
    return value


def _hex_bytes(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise _Bad(f"{where} is not 64 lowercase hex digits")
    return bytes.fromhex(value)


class _Bundle:
    """The bundle's files as read once; each check reads what it needs from here."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.raw: dict[str, bytes | _Bad] = {}
        self.manifest_bytes = b""
        self.manifest: dict[str, Any] | _Bad = _Bad("manifest.json not read")
        try:
            self.manifest_bytes = _read(folder, MANIFEST)
            self.manifest = _json(self.manifest_bytes, MANIFEST)
            if self.manifest.get("format") != FORMAT:
                raise _Bad(f"manifest.json is not format {FORMAT}")
            _field(self.manifest, "incident", str, MANIFEST)
            files = _field(self.manifest, "files", dict, MANIFEST)
            for name, digest in files.items():
                if not _NAME.fullmatch(name) or name in (MANIFEST, SIGNATURE):
                    raise _Bad(f"manifest.json lists {name!r}, not a bundle file's name")
                _hex_bytes(digest, f"manifest.json's digest of {name}")
        except _Bad as bad:
            self.manifest = bad

    def meta(self) -> dict[str, Any]:
        if isinstance(self.manifest, _Bad):
            raise self.manifest
        return self.manifest

    def file(self, name: str) -> bytes:
        """A listed file's bytes (read once)."""
        if name not in self.raw:
            try:
                self.raw[name] = _read(self.folder, name)
            except _Bad as bad:
                self.raw[name] = bad
        found = self.raw[name]
        if isinstance(found, _Bad):
            raise found
        return found

    def parsed(self, name: str) -> dict[str, Any]:
        return _json(self.file(name), name)


def _signature(b: _Bundle, pinned: bytes | None) -> str:
    sig = _read(b.folder, SIGNATURE)
    if pinned is not None:
        if len(pinned) != PUBLIC_KEY_LEN:
            raise _Bad(f"the pinned key is {len(pinned)} bytes, not {PUBLIC_KEY_LEN}")
        if not signature_ok(pinned, sig, b.manifest_bytes):
            raise _Bad(f"manifest.sig is not a signature by the pinned key {fingerprint(pinned)}"
                       " over manifest.json")
        if b.meta().get("centre_key") != pinned.hex():
            raise _Bad("manifest.json names another centre key than the pinned one")
        return f"signed by the pinned centre key {fingerprint(pinned)}"
    named = _hex_bytes(b.meta().get("centre_key"), "manifest.json's centre_key")
    if not signature_ok(named, sig, b.manifest_bytes):
        raise _Bad("manifest.sig is not a signature by the key manifest.json names")
    return (f"signature valid, but the key is NOT PINNED: it is the key the bundle names"
            f" itself (fingerprint {fingerprint(named)}); compare it with the centre's"
            " published fingerprint, or give the public key")


def _files(b: _Bundle) -> str:
    listed: dict[str, str] = b.meta()["files"]
    missing = [name for name in BUNDLE_FILES if name not in listed]
    if missing:
        raise _Bad(f"manifest.json does not list {', '.join(missing)}")
    try:
        present = {p.name for p in b.folder.iterdir()}
    except OSError as exc:
        raise _Bad(f"cannot list the bundle: {exc.strerror or exc}") from None
    extra = sorted(present - set(listed) - {MANIFEST, SIGNATURE})
    if extra:
        raise _Bad(f"not in the manifest: {', '.join(repr(n) for n in extra)}")
    for name, digest in sorted(listed.items()):
        if hashlib.sha256(b.file(name)).hexdigest() != digest:
            raise _Bad(f"{name} is not the file the manifest lists (SHA-256 differs)")
    return f"{len(listed)} files, each as listed, none other"


def _entries(b: _Bundle) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    excerpt = b.parsed(AUDIT)
    entries = _field(excerpt, "entries", list, AUDIT)
    if not entries or not all(isinstance(e, dict) for e in entries):
        raise _Bad("audit.json holds no entries (it always holds the export's own)")
    return entries, _field(excerpt, "head", dict, AUDIT)


def _audit(b: _Bundle) -> str:
    entries, head = _entries(b)
    ref = b.meta()["incident"]
    prev: tuple[int, bytes] | None = None
    for e in entries:
        where = f"audit entry {e.get('seq')!r}"
        seq = _field(e, "seq", int, where)
        at = _field(e, "at", float, where)  # stored REAL: an int would hash differently
        actor, action, subject, source, detail = (
            _field(e, name, str, where) for name in ("actor", "action", "subject", "source",
                                                     "detail_json"))
        prev_hash = _hex_bytes(e.get("prev_hash"), f"{where}'s prev_hash")
        digest = _hex_bytes(e.get("hash"), f"{where}'s hash")
        if subject != ref:
            raise _Bad(f"{where} is about {subject!r}, not {ref}")
        if entry_hash(seq, at, actor, action, subject, source, detail, prev_hash) != digest:
            raise _Bad(f"{where}: its hash does not recompute (a field was altered)")
        if prev is not None and seq <= prev[0]:
            raise _Bad(f"{where} follows seq {prev[0]}: entries out of order")
        if prev is not None and seq == prev[0] + 1 and prev_hash != prev[1]:
            raise _Bad(f"{where} does not link to entry {prev[0]}: the chain is broken")
        prev = (seq, digest)
    assert prev is not None  # _entries refuses an empty list
    count = _field(head, "count", int, "audit.json's head")
    head_hash = _hex_bytes(head.get("hash"), "audit.json's head hash")
    if count < prev[0] or count == prev[0] and head_hash != prev[1]:
        raise _Bad(f"the head (count {count}) does not end at or after the last entry"
                   f" (seq {prev[0]})")
    return (f"{len(entries)} entries of {ref}, each hash recomputes; the log's head at export:"
            f" {count} entries, hash {head_hash.hex()}")


def _export_entry(b: _Bundle) -> str:
    entries, _ = _entries(b)
    exports = [e for e in entries if e.get("action") == EXPORT_ACTION]
    if not exports:
        raise _Bad("the audit excerpt holds no incident.export entry")
    last = exports[-1]
    detail = _json(_field(last, "detail_json", str, "the export entry").encode("utf-8"),
                   "the export entry's detail")
    if detail.get("manifest_sha256") != content_digest(b.meta()["files"]):
        raise _Bad("the last export entry names other files than this bundle's")
    if last.get("actor") != b.meta().get("exported_by"):
        raise _Bad("the export entry's actor is not the manifest's exported_by")
    return f"entry {last.get('seq')} records this export, by {last.get('actor')}"


def _frames(b: _Bundle, keys: dict[int, bytes] | None) -> str:
    frames = _field(b.parsed(FRAMES), "frames", list, FRAMES)
    for i, f in enumerate(frames):
        where = f"frame {i}"
        if not isinstance(f, dict):
            raise _Bad(f"{where} is not an object")
        for name, kind in (("key", str), ("channel", str), ("frame_hex", str),
                           ("button_id", int), ("received_at", (int, float))):
            _field(f, name, kind, where)
    if keys is None:
        return f"{len(frames)} frames NOT checked (no key given)"
    for i, f in enumerate(frames):
        where = f"frame {i} ({f['key']})"
        master = keys.get(f["button_id"])
        if master is None:
            raise _Bad(f"{where}: no key given for button {f['button_id']:08x}")
        try:
            frame = verify_centre(bytes.fromhex(f["frame_hex"]), CentreKey.from_master(master))
        except (ValueError, FrameError) as exc:
            raise _Bad(f"{where} does not verify with the button's key: {exc}") from None
        event = f"{frame.button_id:08x}-{frame.boot_id}-{frame.seq}"
        prefix, slash, suffix = f["key"].partition("/")
        if frame.button_id != f["button_id"] or prefix != event or \
                (slash and not UPDATE_SUFFIX.fullmatch(suffix)):
            raise _Bad(f"{where}: the frame is {event}, not what its key names")
    return f"{len(frames)} frames, each the button's own (centre tag verified)"


def _timeline(b: _Bundle) -> str:
    timeline = b.parsed(TIMELINE)
    if timeline.get("format") != TIMELINE_FORMAT:
        raise _Bad(f"timeline.json is not format {TIMELINE_FORMAT}")
    if timeline.get("incident") != b.meta()["incident"]:
        raise _Bad("timeline.json is about another incident than the manifest")
    listed = b.parsed(FRAMES)
    if listed.get("incident") != b.meta()["incident"]:
        raise _Bad("frames.json is about another incident than the manifest")
    theirs, ours = _field(timeline, "frames", list, TIMELINE), listed.get("frames")
    key, button = timeline.get("key"), timeline.get("button_id")
    if not isinstance(ours, list) or len(theirs) != len(ours):
        raise _Bad("timeline.json and frames.json hold different numbers of frames")
    for i, (t, f) in enumerate(zip(theirs, ours)):
        if not isinstance(t, dict) or not isinstance(f, dict) or \
                any(t.get(n) != f.get(n) for n in _FRAME_COMPARED) or f.get("button_id") != button:
            raise _Bad(f"frame {i} differs between timeline.json and frames.json")
        if not isinstance(key, str) or str(f.get("key")).partition("/")[0] != key:
            raise _Bad(f"frame {i} is not one of the incident's ({key!r})")
    return f"timeline.json holds the same {len(ours)} frames as frames.json"


def verify_bundle(folder: Path, public_key: bytes | None,
                  centre_keys: dict[int, bytes] | None) -> list[Check]:
    """Every check's finding, in order (see the module's docstring)."""
    b = _Bundle(Path(folder))
    steps: list[tuple[str, Callable[[], str]]] = [
        ("signature", lambda: _signature(b, public_key)),
        ("files", lambda: _files(b)),
        ("audit", lambda: _audit(b)),
        ("export entry", lambda: _export_entry(b)),
        ("frames", lambda: _frames(b, centre_keys)),
        ("timeline", lambda: _timeline(b)),
    ]
    out = []
    for name, step in steps:
        try:
            out.append(Check(name, True, step()))
        except _Bad as bad:
            out.append(Check(name, False, str(bad)))
        except Exception as exc:  # noqa: BLE001 - a shape no check foresaw is still a fault
            out.append(Check(name, False, f"malformed bundle ({type(exc).__name__}: {exc})"))
    return out


def verify(bundle_dir: Path, *, public_key: bytes | None = None,
           centre_keys: dict[int, bytes] | None = None) -> Report:
    """Checks a bundle on its own (no centre needed): the signature (with the pinned
    `public_key`, raw 32 bytes, if given), the files against the manifest, the audit excerpt's
    chain and head, the export entry, the frames (with the buttons' K_c, `centre_keys`, if
    given) and that the timeline holds the same frames. Never raises for a bad bundle: each
    fault is a failed check."""
    checks = verify_bundle(Path(bundle_dir), public_key, centre_keys)
    return Report(all(c.ok for c in checks), checks)
