"""The tools' exception tree: each error says what went wrong and what to do about it."""
from __future__ import annotations


class ToolError(Exception):
    """Base of every error the msa command line reports; `hint` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}{'; ' + hint if hint else ''}")


class UnknownBoard(ToolError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown board {name!r}", "choose one of " + ", ".join(known))


class CompileError(ToolError):
    def __init__(self, path: str, output: str) -> None:
        self.path = path
        self.output = output
        super().__init__(f"mpy-cross could not compile {path}: {output.strip()}",
                         "fix the firmware source; it must be MicroPython")
