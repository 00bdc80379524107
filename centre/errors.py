"""The reference centre's exception tree: every error carries the data a caller acts on."""
from __future__ import annotations


class CentreError(Exception):
    """Base of every error the msa reference centre raises."""


class RegistryError(CentreError):
    """The case registry could not be read or written, or was given bad data."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"case registry {path}: {detail}")


class RecordError(CentreError):
    """The centre's alarm records could not be read or written."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"alarm records {path}: {detail}")


class DataError(CentreError):
    """An area of the centre's data at `path` (any of the three: centre/storage.py) could not
    be opened or migrated; `detail` is the database's own words."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"centre data {path}: {detail}")


class StorageConflict(CentreError):
    """A write broke a unique or primary key of the centre's data at `path` (a name taken, a
    row that exists): `detail` is the database's own words."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"{path}: {detail}")


class SchemaError(CentreError):
    """The centre's data at `path` is not at the schema version this msa needs (`found`,
    `wanted`): older is fixed by `msa centre migrate`, newer needs a newer msa."""

    def __init__(self, path: str, found: int, wanted: int) -> None:
        self.path = path
        self.found = found
        self.wanted = wanted
        what = ("run `msa centre migrate` first" if found < wanted else
                "it was migrated by a newer msa: run that version (no downgrades)")
        super().__init__(f"{path}: schema version {found}, this msa needs {wanted}: {what}")


class CentreConfigError(CentreError):
    """The centre cannot start as configured: `key` names the setting, `detail` what it must
    be (e.g. a token too short to be one)."""

    def __init__(self, key: str, detail: str) -> None:
        self.key = key
        self.detail = detail
        super().__init__(f"{key}: {detail}")


class AuditError(CentreError):
    """The audit log at `path` could not be read or written, or refused an entry; `detail`
    says which and why (nothing was written when an append is refused)."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"audit log {path}: {detail}")


class EvidenceError(CentreError):
    """An evidence bundle or the centre's signing key at `path` could not be made or read;
    `detail` says why and what to do (nothing half-made is left behind)."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"evidence {path}: {detail}")


class ReportError(CentreError):
    """The daily report for `day` (ISO date) cannot be made: `detail` says why (a day still
    to come, records that cannot be read)."""

    def __init__(self, day: str, detail: str) -> None:
        self.day = day
        self.detail = detail
        super().__init__(f"daily report for {day}: {detail}")


class BackupError(CentreError):
    """A backup could not be written, or a backup file was refused or could not be restored
    (`path`: the backup file or state folder; `detail`: what is wrong). Nothing half-done
    stays: no partial backup file, no half-restored state folder."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"backup {path}: {detail}")
