"""Rate-limited logging for the centre's receivers: a flood of hostile input must not flood the
log (or the disk under it). Each kind of line is written at most `burst` times per `period_s`;
the next one written after a quiet spell says how many were left out."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Throttle:
    """Logs through `logger`, at most `burst` lines per `period_s` for each `kind`."""

    def __init__(self, logger: logging.Logger, burst: int = 5, period_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, kinds_max: int = 256) -> None:
        self.logger = logger
        self.burst, self.period_s, self.clock = burst, period_s, clock
        self.kinds_max = kinds_max  # distinct kinds tracked; a flood of new ones shares one
        self._spent: dict[str, tuple[float, int, int]] = {}  # kind -> (since, written, left out)

    def log(self, level: int, kind: str, msg: str, *args: object) -> bool:
        """Writes the line unless this kind spent its burst; True when it was written."""
        now = self.clock()
        if kind not in self._spent and len(self._spent) >= self.kinds_max:
            kind = "(other)"
        since, written, left_out = self._spent.get(kind, (now, 0, 0))
        if now - since >= self.period_s:
            since, written = now, 0
        if written >= self.burst:
            self._spent[kind] = (since, written, left_out + 1)
            return False
        if left_out:
            msg += f" ({left_out} more like it left out)"
        self._spent[kind] = (since, written + 1, 0)
        self.logger.log(level, msg, *args)
        return True

    def warning(self, kind: str, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, kind, msg, *args)
