"""The real boards' modules where they can run here: against a recording stand-in for the
`machine` module (there is no RP2040 in CI; docs/boards.md lists what is verified only so)."""
from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest


class _Pin:
    IN, PULL_UP, PULL_DOWN = 0, 1, 2

    def __init__(self, pin_id: int, *_args: Any) -> None:
        self.id = pin_id


class _Adc:
    made: list[Any] = []

    def __init__(self, source: Any, **_kw: Any) -> None:
        _Adc.made.append(source)

    def read_u16(self) -> int:
        return 0x8000


@pytest.fixture
def pico() -> Iterator[types.ModuleType]:
    machine = types.ModuleType("machine")
    machine.Pin = _Pin  # type: ignore[attr-defined]
    machine.ADC = _Adc  # type: ignore[attr-defined]
    clock = types.ModuleType("time")  # MicroPython's time: ticks_* (unused by the battery)
    for name in ("ticks_ms", "ticks_diff", "ticks_add", "sleep_ms"):
        setattr(clock, name, lambda *_a: 0)
    saved = {name: sys.modules.pop(name, None)
             for name in ("machine", "hwbase", "pico_w", "time")}
    sys.modules["machine"] = machine
    sys.modules["time"] = clock
    try:
        yield importlib.import_module("pico_w")
    finally:
        for name, module in saved.items():
            sys.modules.pop(name, None)
            if module is not None:
                sys.modules[name] = module


def test_the_pico_w_reads_its_battery_through_the_pin(pico: types.ModuleType) -> None:
    """ADC(3) by channel number leaves GPIO29 digital; ADC(Pin(29)) switches it to analogue."""
    _Adc.made.clear()
    assert pico.battery_counts() == 0x800
    assert len(_Adc.made) == 1 and isinstance(_Adc.made[0], _Pin) and _Adc.made[0].id == 29
