"""The few `micropython` module names the firmware uses, so its core also runs on CPython."""
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def const(value: T) -> T:
    return value


def schedule(func: Callable[[Any], None], arg: Any) -> None:
    func(arg)


def heap_lock() -> int:
    return 0


def heap_unlock() -> int:
    return 0
