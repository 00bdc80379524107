"""Turns raw bytes from a button into typed events: verifies the tag, applies the sequence
rules with persisted state, and decides what to acknowledge. Transport-independent: the BLE
link (link.py) feeds it indications, notifications and advert payloads.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from msa.wire.errors import FrameError
from .events import ButtonEvent, Via, event_for
from msa.wire.protocol import ButtonKeys, Frame, Kind, open_burst, verify
from .sequence import SequenceGuard

log = logging.getLogger("msa.host.receiver")

# Kinds the button keeps until acknowledged (docs/protocol.md, event kinds).
ACKED_KINDS = frozenset({Kind.ALARM, Kind.TEST, Kind.LOW_BATTERY, Kind.BOOT})


@dataclass(frozen=True)
class Outcome:
    """What to do with one received frame."""

    event: ButtonEvent | None  # a first-seen, verified event for dispatch
    ack: int | None  # the sequence number to acknowledge, if any
    rejected: str | None = None  # why it was rejected, if it was


@dataclass
class Receiver:
    """Frames from the buttons this host serves. `keys` maps button id to its keys."""

    keys: Mapping[int, ButtonKeys]
    guard: SequenceGuard
    rejections: dict[str, int] = field(default_factory=dict)

    def _reject(self, reason: str, button_id: int | None) -> Outcome:
        self.rejections[reason] = self.rejections.get(reason, 0) + 1
        # Logged with reason and button only: never the frame's key material or contents.
        log.warning("frame rejected: %s (button %s)", reason,
                    "unknown" if button_id is None else f"{button_id:#010x}")
        return Outcome(None, None, reason)

    def frame(self, raw: bytes, via: Via = Via.GATT, commit: bool = True) -> Outcome:
        """Verifies a frame from a connection; the event comes before the ack is due.
        With commit=False an accepted event is only peeked: the caller stores it, then
        calls commit(event) before acknowledging (see SequenceGuard.peek)."""
        raw = bytes(raw)
        button_id = int.from_bytes(raw[2:6], "big") if len(raw) >= 6 else None
        keys = self.keys.get(button_id) if button_id is not None else None
        if keys is None:
            return self._reject("button" if button_id is not None else "length", button_id)
        try:
            frame = verify(raw, keys)
        except FrameError as exc:
            return self._reject(exc.reason, button_id)
        return self._sequence(frame, via, commit)

    def advert(self, payload: bytes, commit: bool = True) -> Outcome:
        """Opens an alarm burst with the keys of every button served."""
        try:
            frame = open_burst(payload, self.keys.items())
        except FrameError as exc:
            return self._reject(exc.reason, None)
        return self._sequence(frame, Via.ADVERT, commit)

    def commit(self, event: ButtonEvent) -> None:
        """Commits a peeked event's sequence number (after the caller stored the event)."""
        self.guard.check(event.button_id, event.frame.seq)

    def _sequence(self, frame: Frame, via: Via, commit: bool) -> Outcome:
        check = self.guard.check if commit else self.guard.peek
        verdict = check(frame.button_id, frame.seq)
        ack = frame.seq if frame.kind in ACKED_KINDS and via is Via.GATT else None
        if not verdict.accepted:
            # A duplicate or replay of something already stored: the button may have missed
            # the first ack, so acknowledge again; never pass it on.
            self.rejections[verdict.outcome.value] = \
                self.rejections.get(verdict.outcome.value, 0) + 1
            log.info("frame %s: button %#010x seq %d", verdict.outcome.value,
                     frame.button_id, frame.seq)
            return Outcome(None, ack, verdict.outcome.value)
        if verdict.gap is not None:
            log.warning("gap: button %#010x skipped %d..%d", frame.button_id, *verdict.gap)
        for lo, hi in verdict.lost:
            log.warning("gap given up: button %#010x %d..%d", frame.button_id, lo, hi)
        return Outcome(event_for(frame, via, time.time(), verdict.gap), ack)
