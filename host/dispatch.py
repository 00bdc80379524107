"""What every channel promises the host: the Channel protocol and its receipts, and where
positions come from. The messages themselves are the wire contract (msa.wire.message)."""
from __future__ import annotations

from contextvars import ContextVar
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


# The time the dispatcher gives the send() running in this context, when it gives less than
# the channel's own deadline (before the SMS fallback is due): a channel with several
# addresses staggers them within it, so the second node is still tried in time.
SEND_BUDGET_S: ContextVar[float | None] = ContextVar("send_budget_s", default=None)


@dataclass(frozen=True)
class Receipt:
    """The centre's acknowledgement of one message on one channel."""

    channel: str
    key: str
    acked_at: float
    reference: str = ""  # the centre's own reference (an incident id), where it gives one
    closed: bool = False  # the centre says the incident is resolved: stop tracking it
    endpoint: str = ""  # which of the channel's addresses answered (a URL, a host:port)


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
