"""Typed events the host hands to the dispatch pipeline, one class per kind of frame."""
from __future__ import annotations

import enum
from dataclasses import dataclass

from msa.wire.protocol import Frame, Kind


class Via(enum.Enum):
    """How the frame reached the host."""

    GATT = "gatt"  # indication or notification over a connection
    ADVERT = "advert"  # an encrypted alarm burst, no connection


@dataclass(frozen=True)
class ButtonEvent:
    """A verified, first-seen frame. received_at is the host's time.time() on arrival."""

    frame: Frame
    via: Via
    received_at: float
    gap: tuple[int, int] | None = None  # sequence numbers skipped just before this one

    @property
    def button_id(self) -> int:
        return self.frame.button_id

    @property
    def pressed_at(self) -> float | None:
        """When the event began, by the host's clock (None if the button could not tell)."""
        if self.frame.age_ms is None:
            return None
        return self.received_at - self.frame.age_ms / 1000


class AlarmEvent(ButtonEvent):
    """The wearer raised the alarm."""


class TestEvent(ButtonEvent):
    """A test alarm: shown to the operator as TEST, nobody is dispatched."""

    __test__ = False  # not a pytest class


class HeartbeatEvent(ButtonEvent):
    """The button is alive (and how its battery is)."""


class LowBatteryEvent(ButtonEvent):
    """The battery fell to the threshold."""


class BootEvent(ButtonEvent):
    """The button (re)started: a reset, a power cut, or tampering."""


EVENT_TYPES: dict[Kind, type[ButtonEvent]] = {
    Kind.ALARM: AlarmEvent,
    Kind.TEST: TestEvent,
    Kind.HEARTBEAT: HeartbeatEvent,
    Kind.LOW_BATTERY: LowBatteryEvent,
    Kind.BOOT: BootEvent,
}


def event_for(frame: Frame, via: Via, received_at: float,
              gap: tuple[int, int] | None = None) -> ButtonEvent:
    """The typed event for a verified frame."""
    return EVENT_TYPES[frame.kind](frame, via, received_at, gap)
