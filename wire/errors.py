"""The wire contract's exception tree: a message that breaks the contract, and the rule it broke."""
from __future__ import annotations


class WireError(Exception):
    """Base of every error the wire codecs raise."""


class FrameError(WireError):
    """A frame, command or advert payload was rejected; `reason` says which rule it broke."""

    def __init__(self, reason: str, data: bytes, detail: str = "") -> None:
        self.reason = reason
        self.data = bytes(data)
        self.detail = detail
        super().__init__(f"frame rejected ({reason}){': ' + detail if detail else ''}")


class Dc09Error(WireError):
    """A SIA DC-09 message was malformed or could not be opened. `reason` names the rule it
    broke (a short tag: "crc", "length", "pad", ...; the centre maps it to NAK or DUH), `data`
    holds the offending bytes as received (ciphertext stays ciphertext; keys are never in it)."""

    def __init__(self, reason: str, data: bytes, detail: str = "") -> None:
        self.reason = reason
        self.data = bytes(data)
        self.detail = detail
        super().__init__(f"DC-09 message rejected ({reason}){': ' + detail if detail else ''}")


class AmlError(WireError):
    """An AML SMS body (ETSI TS 103 625) is malformed or cannot be built: `field` is the
    attribute at fault. `body` is kept for the caller but never put in the message: it holds
    a position."""

    def __init__(self, field: str, detail: str, body: str = "") -> None:
        self.field = field
        self.detail = detail
        self.body = body
        super().__init__(f"AML attribute {field}: {detail}")


class ApiError(WireError):
    """A dispatch API body (JSON) is malformed: `field` is the one at fault."""

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        super().__init__(f"malformed message: {field}: {detail}")
