"""The host's exception tree: every error carries the data a caller needs to act on it."""
from __future__ import annotations


class HostError(Exception):
    """Base of every error the msa host raises."""


class FrameError(HostError):
    """A frame, command or advert payload was rejected; `reason` says which rule it broke."""

    def __init__(self, reason: str, data: bytes, detail: str = "") -> None:
        self.reason = reason
        self.data = bytes(data)
        self.detail = detail
        super().__init__(f"frame rejected ({reason}){': ' + detail if detail else ''}")


class StateError(HostError):
    """The host's persisted receiver state could not be read or written."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"receiver state {path}: {detail}")


class LinkError(HostError):
    """The BLE link to a button failed or could not be set up."""

    def __init__(self, button_id: int, detail: str) -> None:
        self.button_id = button_id
        self.detail = detail
        super().__init__(f"button {button_id:#010x}: {detail}")
