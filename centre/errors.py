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
