"""Signed evidence bundles: one incident, exported from the centre's state folder as a folder a
prosecutor can check on any machine, without the centre (`msa centre export`, `msa verify`).

A bundle (format "msa-evidence-1") holds:
  timeline.json  the incident's timeline (centre/timeline.py) and its case file;
  frames.json    every copy of the button's own frames that reached the centre, as received;
  audit.json     the incident's audit entries, every field, and the audit log's head (count,
                 hash) at export time: an anchor outside the centre (centre/audit.py);
  report.html    the same for people: printable, no script, nothing fetched from outside;
  manifest.json  the SHA-256 of each file above, the exporter, the time, the centre's key;
  manifest.sig   the centre's Ed25519 signature over manifest.json's exact bytes.

The export is recorded in the audit log ("incident.export") before audit.json is written, so
the bundle holds its own export entry. That entry cannot name the hash of the manifest, which
hashes audit.json and so the entry itself: its `manifest_sha256` is the SHA-256 of the
manifest's file list without audit.json (content_digest()), which verify() recomputes.

What a good verify() proves: the holder of the pinned key signed this manifest, the files are
the ones it lists, the audit excerpt is the centre's own chain at export, and (given the
buttons' K_c) every frame is the button's. It cannot prove that the centre recorded everything
(a centre that never recorded an arrival exports none), nor, without a pinned key, who signed;
nor that the excerpt holds every entry about the incident (the key's holder could leave one
out): the head (count, hash) is what to compare with the centre's own log, which verifies up to
that count and hash if it is the log the bundle came from.

The timeline is read before the export is recorded: its "operator" events stop short of the
export, which is in audit.json. The export entry stays if writing the bundle then fails (an
attempt, recorded); a bundle is written to a temporary folder and renamed whole into place.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .audit import AuditLog, Entry
from .core import Centre
from .errors import EvidenceError
from .evidence_check import (AUDIT, EXPORT_ACTION, FORMAT, FRAMES, MANIFEST, REPORT, SIGNATURE,
                             TIMELINE, Check, Report, content_digest, verify)
from .evidence_report import render_report, utc_iso
from .notes import Notes
from .proxstore import ProximityStore
from .registry import Registry
from .retention import StatePaths
from .signing import signing_key
from .storage import Engine
from .timeline import incident_timeline

__all__ = ["Check", "Report", "canonical", "content_digest", "export", "verify"]


def canonical(obj: object) -> bytes:
    """The bytes a bundle's JSON file holds (sorted keys, UTF-8, finite numbers only)."""
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False)
            + "\n").encode("utf-8")


def _audit_json(ref: str, entries: list[Entry], head: tuple[int, bytes]) -> dict[str, Any]:
    return {"incident": ref,
            "entries": [{"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action,
                         "subject": e.subject, "source": e.source, "detail_json": e.detail_json,
                         "prev_hash": e.prev_hash.hex(), "hash": e.hash.hex()}
                        for e in entries],
            "head": {"count": head[0], "hash": head[1].hex()}}


def _frames_json(timeline: dict[str, Any]) -> dict[str, Any]:
    return {"incident": timeline["incident"],
            "frames": [{"key": f["key"], "channel": f["channel"],
                        "received_at": f["received_at"], "frame_hex": f["frame_hex"],
                        "button_id": timeline["button_id"]} for f in timeline["frames"]]}


def _check_out(out_dir: Path) -> None:
    """Refuses an out_dir that is anything but missing or an empty folder."""
    try:
        if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
            raise EvidenceError(str(out_dir), "exists and is not a folder: give a new folder")
        if out_dir.is_dir() and any(out_dir.iterdir()):
            raise EvidenceError(str(out_dir), "is not empty: give a new folder (a bundle is"
                                " never written over another)")
    except OSError as exc:
        raise EvidenceError(str(out_dir), f"cannot use it: {exc.strerror or exc}") from exc


def _write_bundle(out_dir: Path, files: dict[str, bytes]) -> None:
    """Writes the files into a private temporary sibling folder, synced, then renames it to
    out_dir (which must be missing or empty): a bundle appears whole or not at all."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        raise EvidenceError(str(out_dir), f"cannot write here: {exc.strerror or exc}") from exc
    try:
        for name, data in files.items():
            fd = os.open(temp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        os.rename(temp, out_dir)
    except OSError as exc:
        shutil.rmtree(temp, ignore_errors=True)
        raise EvidenceError(str(out_dir), f"bundle not written: {exc.strerror or exc}"
                            " (give a new, empty folder)") from exc


def export(state_dir: Path, ref: str, out_dir: Path, *, actor: str, source: str,
           database: str | None = None) -> Path:
    """Exports incident `ref` ("INC-000012") from the centre's state folder (or, given its
    URL, the centre's PostgreSQL database) into the new folder out_dir, signed with the
    centre's key (in state_dir either way); the folder. Records "incident.export" in the audit
    log first. EvidenceError (or the stores' own CentreError) for a missing state folder or
    incident, an out_dir in use, or a store that cannot be read: no bundle is left half-made."""
    paths = StatePaths.of(state_dir, database)
    records = paths.records
    if records.kind is Engine.SQLITE and (not Path(paths.registry.target).is_file()
                                          or not Path(records.target).is_file()):
        raise EvidenceError(str(state_dir), "not a centre's state folder (no registry.db and"
                            " records.db): give the --state-dir the centre runs with")
    _check_out(out_dir)
    key = signing_key(state_dir)  # before the audit entry: a bad key file exports nothing
    registry = Registry(paths.registry)
    opened: list[Centre | Notes | AuditLog | ProximityStore] = []
    try:
        centre = Centre(records, registry)
        opened.append(centre)
        notes = Notes(records)
        opened.append(notes)
        audit = AuditLog(paths.audit)
        opened.append(audit)
        proximity = ProximityStore(registry)
        opened.append(proximity)
        timeline = incident_timeline(centre, ref, notes=notes, audit=audit,
                                     proximity=proximity)
        if timeline is None:
            raise EvidenceError(ref, "no such incident in this centre's records")
        ref = str(timeline["incident"])  # an alarm key names it too: the bundle says INC-...
        case_ref = timeline.get("case_ref")
        case = registry.case(case_ref) if isinstance(case_ref, str) else None
        timeline = {**timeline, "case": None if case is None else case.as_json()}
        at = time.time()
        try:
            files = {TIMELINE: canonical(timeline), FRAMES: canonical(_frames_json(timeline)),
                     REPORT: render_report(timeline, key.fingerprint, at).encode("utf-8")}
        except ValueError as exc:  # NaN or infinity in a record: JSON has no such number
            raise EvidenceError(ref, f"the records hold a value no bundle can carry: {exc}"
                                ) from exc
        digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
        audit.append(actor, EXPORT_ACTION, ref, source,
                     {"out": out_dir.name, "manifest_sha256": content_digest(digests)}, at=at)
        files[AUDIT] = canonical(_audit_json(ref, audit.entries(subject=ref), audit.head()))
        digests[AUDIT] = hashlib.sha256(files[AUDIT]).hexdigest()
        manifest = canonical({"format": FORMAT, "incident": ref, "exported_at": utc_iso(at),
                              "exported_by": actor, "centre_key": key.public_key.hex(),
                              "files": digests})
        files[MANIFEST] = manifest
        files[SIGNATURE] = key.sign(manifest)
        _write_bundle(out_dir, files)
    finally:
        for store in reversed(opened):
            store.close()
        registry.close()
    return out_dir
