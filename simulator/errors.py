"""The simulator's exception tree."""
from __future__ import annotations


class SimError(Exception):
    """Base of every error the simulator raises."""


class InterpreterError(SimError):
    """The MicroPython side failed or died; carries its output."""

    def __init__(self, what: str, output: str) -> None:
        self.what = what
        self.output = output
        super().__init__(f"MicroPython {what}: {output.strip()}")


class BridgeError(SimError):
    """The bridge to a virtual board failed: no connection, no reply, or the board died."""
