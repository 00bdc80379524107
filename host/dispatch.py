"""What every channel promises the host: the Channel protocol and its receipts, and where
positions come from. The messages themselves are the wire contract (msa.wire.message)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from msa.wire.message import Fix, Message, MessageKind


class LocationSource(Protocol):
    """Where positions come from. `best()` never waits: dispatch goes out with what is known."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def best(self) -> Fix | None:
        """The newest fix that is not stale, or None (no fix yet, or lost)."""


@dataclass(frozen=True)
class Receipt:
    """The centre's acknowledgement of one message on one channel."""

    channel: str
    key: str
    acked_at: float
    reference: str = ""  # the centre's own reference (an incident id), where it gives one
    closed: bool = False  # the centre says the incident is resolved: stop tracking it


class Channel(Protocol):
    """One way to the centre. send() returns once the centre acknowledged the message, or
    raises ChannelError; it never waits past `deadline_s` (the dispatcher also enforces it).
    Channels are safe to call again with the same message: the centre dedupes on its key."""

    name: str
    deadline_s: float

    def accepts(self, kind: MessageKind) -> bool:
        """Whether this channel carries messages of this kind at all."""

    async def send(self, message: Message) -> Receipt: ...

    async def close(self) -> None: ...
