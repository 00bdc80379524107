"""The host's exception tree: every error carries the data a caller needs to act on it."""
from __future__ import annotations


class HostError(Exception):
    """Base of every error the msa host raises."""


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


class ChannelError(HostError):
    """A dispatch channel could not deliver a message. `retryable` is False when trying the
    same message again on this channel cannot help (refused by the centre, bad address)."""

    def __init__(self, channel: str, detail: str, retryable: bool = True) -> None:
        self.channel = channel
        self.detail = detail
        self.retryable = retryable
        super().__init__(f"channel {channel}: {detail}")


class LocationError(HostError):
    """A location source failed (port gone, garbled stream, gpsd unreachable)."""

    def __init__(self, source: str, detail: str) -> None:
        self.source = source
        self.detail = detail
        super().__init__(f"location source {source}: {detail}")


class ConfigError(HostError):
    """The configuration file is wrong: `key` is the dotted key, `expected` what it must be."""

    def __init__(self, key: str, expected: str, path: str = "") -> None:
        self.key = key
        self.expected = expected
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{key}: {expected}")


class OutboxError(HostError):
    """The durable outbox could not be read or written."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"outbox {path}: {detail}")


class ModemError(HostError):
    """The GSM modem failed or refused a command. `command` is the AT command without its
    arguments (never a phone number); `family` and `code` are the "+CMS ERROR"/"+CME ERROR"
    number where the modem gave one (or "CREG" and the registration status); `meaning` says
    what went wrong; `retryable` is False when trying again cannot help (no SIM, barred)."""

    def __init__(self, command: str, meaning: str, *, code: int | None = None,
                 family: str = "", retryable: bool = True) -> None:
        self.command = command
        self.meaning = meaning
        self.code = code
        self.family = family
        self.retryable = retryable
        coded = f"{family} {code}: " if code is not None else ""
        super().__init__(f"modem {command}: {coded}{meaning}")
