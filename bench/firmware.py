"""Benchmark section "firmware": the firmware's footprint. Heap in use after boot, asked from
inside the running firmware on the virtual board (flashed as .mpy, as `msa flash` does), the
smallest heap it boots, bonds and delivers alarms in, the .mpy image per board, and the press
path run with the heap locked (no allocation possible).

How the heap is read: the board boots a main.py that is the firmware's own (`import app;
app.main()`) plus a probe that notes gc.mem_alloc() before and after importing each layer and
answers the bridge topic "probe" with a fresh gc.collect(); gc.mem_alloc(). The virtual
board's hardware (simhw, simlink, bluetooth: C code on a real port) is imported before the
firmware, so its code is measured and left out; its objects (the bridge's socket and reader
task, the hardware's timers) stay in, so the firmware figures are upper bounds.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from msa.wire.protocol import Kind
from msa.simulator.errors import SimError
from msa.simulator.vboard import MP_DIR, micropython_binary
from msa.simulator.world import Host, World
from msa.tools.device import build_image
from msa.tools.firmware import BOARD_DIR, FIRMWARE_DIR, boards, compile_board, compile_file

from .figures import Better, Figure, Options, median

SECTION = "firmware"
TARGET_KIB = 24.0  # the issue's target for heap after boot and for the .mpy image
ISSUE_HEAP_KIB = 64  # the issue measures in a virtual board with a 64 KiB heap
PROBE_HEAP = "256K"  # the footprint run's heap: what the firmware needs, with room to spare
HOLD_MS = 100  # the shortest hold the firmware accepts as an alarm
SIM_LAYER = ("simlink", "simhw", "bluetooth")  # the virtual board's hardware modules
PROPS_DIR = Path(__file__).resolve().parent.parent / "tests" / "firmware"
WAIT_S = 8.0  # how long a step may take before the run counts as failed
T = TypeVar("T")

# main.py for the footprint run: the firmware's own two lines, after a probe that notes the
# heap layer by layer (asyncio and the board module count as the firmware's).
PROBE_MAIN = '''\
import gc
gc.collect()
_BASE = gc.mem_alloc()
import asyncio, board
gc.collect()
_BOARD = gc.mem_alloc()
import simlink, simhw, bluetooth
gc.collect()
_HW = gc.mem_alloc()
import app
gc.collect()
_CODE = gc.mem_alloc()


def _probe(_msg):
    gc.collect()
    return [_BASE, _BOARD, _HW, _CODE, gc.mem_alloc(), gc.mem_free()]


simlink.get().on("probe", _probe)
app.main()
'''


class Failed(Exception):
    """The board printed an error (a MemoryError, a traceback) or a step timed out."""


def _flash(world: World, image: Path, probe: bool) -> None:
    """The flashed image (.mpy modules, main.py as source), the virtual hardware as .mpy too
    (compiling its source on the board would take heap the firmware then lacks)."""
    flash = world.board.flash
    flash.mkdir(parents=True, exist_ok=True)
    for f in image.iterdir():
        if f.is_file():
            shutil.copyfile(f, flash / f.name)
    for name in SIM_LAYER:
        compile_file(MP_DIR / f"{name}.py", flash / f"{name}.mpy")
    if probe:
        (flash / "main.py").write_text(PROBE_MAIN)


def _image(root: Path) -> Path:
    """The sim board's image as `msa flash` builds it, in one folder."""
    out = root / "image"
    if not out.exists():
        built = build_image("sim", root / "build")
        out.mkdir(parents=True)
        for f in built.files:
            shutil.copyfile(f.local, out / f.name)
    return out


async def _watched(world: World, step: Awaitable[T]) -> T:
    """Awaits a step, failing at once when the board prints an error."""
    task = asyncio.ensure_future(step)
    try:
        async with asyncio.timeout(WAIT_S):
            while not task.done():
                if any("Error" in line or "Traceback" in line for line in world.board.output):
                    raise Failed("\n".join(world.board.output[-6:]))
                await asyncio.wait({task}, timeout=0.02)
        return task.result()
    except TimeoutError:
        raise Failed("timed out") from None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _press(world: World, host: Host) -> None:
    await world.board.press([[0, True], [HOLD_MS + 30, False]])
    await _watched(world, host.next_event(kind=Kind.ALARM))
    await asyncio.sleep(0.06)  # released and settled before the next press


async def _probe(world: World) -> list[int]:
    assert world.board.bridge is not None
    got = await world.board.bridge.request({"t": "probe"})
    return [int(v) for v in got]


async def footprint(root: Path, alarms: int, boot: int = 0) -> dict[str, Any]:
    """Heap readings from inside the firmware: advertising with no host, then connected and
    bonded, then after `alarms` alarms were delivered. Each reading is the probe's list:
    [interpreter, + asyncio and board, + virtual hardware, + firmware, now, free]."""
    world = World(root / f"boot-{boot}", hold_ms=HOLD_MS, heartbeat_s=3600)
    world.board.heapsize = PROBE_HEAP
    _flash(world, _image(root), probe=True)
    try:
        await world.board.provision(world.config)
        await world.board.start()
        await asyncio.sleep(1.0)  # booted: radio up, advertising, loops running
        advertising = await _probe(world)
        host = await world.add_host()
        await _watched(world, host.next_event(kind=Kind.BOOT))
        await asyncio.sleep(0.5)  # the BOOT event acknowledged, bond written
        connected = await _probe(world)
        for _ in range(alarms):
            await _press(world, host)
        after = await _probe(world)
    finally:
        await world.close()
    return {"advertising": advertising, "connected": connected, "after": after}


async def runs_in(root: Path, heap_kib: int, alarms: int) -> bool:
    """Whether the flashed firmware boots, bonds to a host and delivers `alarms` alarms in a
    heap of heap_kib KiB with nothing printed in error and no reboot."""
    world = World(root / f"heap-{heap_kib}", hold_ms=HOLD_MS, heartbeat_s=3600)
    world.board.heapsize = f"{heap_kib}K"
    _flash(world, _image(root), probe=False)
    try:
        await world.board.provision(world.config)
        await _watched(world, world.board.start())
        host = await world.add_host()
        await _watched(world, host.next_event(kind=Kind.BOOT))
        for _ in range(alarms):
            await _press(world, host)
        await asyncio.sleep(0.2)
        return world.board.boots == 1 and not any("Error" in line
                                                  for line in world.board.output)
    except (Failed, SimError):
        return False
    finally:
        await world.close()


async def smallest_heap(root: Path, alarms: int, step_kib: int) -> int | None:
    """Bisection between a heap the firmware cannot load in and PROBE_HEAP, to step_kib."""
    lo, hi = 16, int(PROBE_HEAP.rstrip("K"))
    if not await runs_in(root, hi, alarms):
        return None
    while hi - lo > step_kib:
        mid = (lo + hi) // 2 // step_kib * step_kib
        if mid <= lo:
            mid = lo + step_kib
        if await runs_in(root, mid, alarms):
            hi = mid
        else:
            lo = mid
    return hi


def baseline_heap() -> int:
    """The interpreter's own heap in use after startup, with nothing imported."""
    out = subprocess.run([micropython_binary(), "-X", f"heapsize={ISSUE_HEAP_KIB}K", "-c",
                          "import gc\ngc.collect()\nprint(gc.mem_alloc())"],
                         capture_output=True, text=True, check=True, timeout=30)
    return int(out.stdout.split()[-1])


def press_path_allocations() -> tuple[int | None, str]:
    """Runs the heap-locked press path of tests/firmware/props.py in MicroPython (the same
    function tests/test_press_path.py runs): 0 when both a 2.5 s hold and a 0.4 s press ran
    with the heap locked; 1 ("at least one") when the interpreter raised MemoryError."""
    if not (PROPS_DIR / "props.py").exists():
        return None, "tests/firmware/props.py is not here (an installed msa without its tests)"
    code = ("import props\nprint(props.press_path_allocation_free(2500), "
            "props.press_path_allocation_free(400))")
    path = ":".join(str(p) for p in (FIRMWARE_DIR, BOARD_DIR, PROPS_DIR))
    proc = subprocess.run([micropython_binary(), "-c", code], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, MICROPYPATH=path),
                          cwd=str(PROPS_DIR.parent.parent))
    if "MemoryError" in proc.stdout + proc.stderr:
        return 1, "MemoryError with the heap locked: the press path allocated"
    if proc.returncode != 0 or "[1, True] [0, False]" not in proc.stdout:
        return None, f"the press path did not run: {(proc.stdout + proc.stderr).strip()[-200:]}"
    return 0, ""


def _kib(n: float) -> float:
    return round(n / 1024, 2)


def _heap_figures(runs: list[dict[str, Any]], alarms: int, floor: str) -> list[Figure]:
    """Each figure is the median of the runs (readings move by about a kilobyte between
    boots: bond and address state, dictionary sizes)."""
    def share(reading: list[int]) -> float:
        base, board, hw, _code, now, _free = reading
        return now - base - (hw - board)  # everything above the interpreter but the hw code

    def fig(name: str, of: Callable[[dict[str, Any]], float], unit: str, note: str,
            target: float | None = None, floor_text: str = "") -> Figure:
        values = [of(r) for r in runs]
        scale = 1024 if unit == "KiB" else 1
        lo, hi = (f"{v / scale:.2f}" if scale > 1 else f"{v:.0f}" for v in (min(values),
                                                                         max(values)))
        spread = f"; median of {len(values)} boots, {lo} to {hi} {unit}" if len(values) > 1 \
            else ""
        return Figure(SECTION, name, round(median(values) / scale, 2), unit, target,
                      Better.LOWER, floor_text, note + spread)

    note = ("gc.mem_alloc() after gc.collect(), read over the bridge from inside the running "
            f"firmware (flashed as .mpy, {PROBE_HEAP} heap), above the interpreter's own; "
            "the virtual hardware's code is left out, its objects are not; "
            "64-bit unix port: pointers and GC blocks are twice a 32-bit device's")
    return [
        fig("heap after boot, connected and bonded", lambda r: share(r["connected"]), "KiB",
            note, TARGET_KIB, floor),
        fig("heap after boot, advertising (no host yet)", lambda r: share(r["advertising"]),
            "KiB", note, TARGET_KIB, floor),
        fig("of which firmware code loaded from .mpy",
            lambda r: float(r["connected"][1] - r["connected"][0]
                            + r["connected"][3] - r["connected"][2]), "KiB",
            "the modules' bytecode, tables and globals (asyncio's too) once imported"),
        fig("heap after boot without the code (as if frozen into the image), lower bound",
            lambda r: share(r["connected"]) - float(r["connected"][1] - r["connected"][0]
                                                   + r["connected"][3] - r["connected"][2]),
            "KiB", "derived, not measured: the connected figure minus the code loaded from"
            " .mpy; frozen bytecode runs from flash, but module dicts and function objects"
            " would still take some heap", TARGET_KIB),
        fig("virtual hardware's code (left out above)",
            lambda r: float(r["connected"][2] - r["connected"][1]), "KiB",
            "simhw, simlink, bluetooth as .mpy: C code on a real port"),
        fig("whole interpreter heap after boot", lambda r: float(r["connected"][4]), "KiB",
            "everything gc.mem_alloc() counts on the virtual board, connected"),
        fig(f"heap growth over {alarms} alarms",
            lambda r: float(r["after"][4] - r["connected"][4]), "B",
            "after the alarms were delivered and acknowledged, minus connected: state, "
            "not a leak, if it does not grow with the number of alarms"),
    ]


async def _measure(options: Options) -> list[Figure]:
    root = options.root / SECTION
    root.mkdir(parents=True, exist_ok=True)
    alarms = options.count(20)
    base = baseline_heap()
    floor = (f"the interpreter alone after startup: {_kib(base)} KiB "
             f"(unix port, {ISSUE_HEAP_KIB} KiB heap)")
    runs = [await footprint(root, alarms, i) for i in range(max(1, options.runs))]
    figures = _heap_figures(runs, alarms, floor)
    step = 1 if options.scale >= 1 else 16
    smallest = await smallest_heap(root, options.count(3), step)
    figures.append(Figure(
        SECTION, "smallest heap it boots, bonds and alarms in", smallest, "KiB",
        float(ISSUE_HEAP_KIB), Better.LOWER,
        f"the interpreter alone: {_kib(base)} KiB",
        f"bisected to {step} KiB with {options.count(3)} alarms, flashed image; includes the "
        "virtual hardware's code and transient bridge messages; the target is the issue's "
        f"{ISSUE_HEAP_KIB} KiB test heap"))
    return figures


def _image_figures(root: Path) -> list[Figure]:
    out = []
    for board in boards():
        compiled = compile_board(board, root / "mpy" / board)
        out.append(Figure(
            SECTION, f".mpy image, {board}", _kib(sum(c.size for c in compiled)), "KiB",
            TARGET_KIB, Better.LOWER, "",
            f"{len(compiled)} modules by mpy-cross (as `msa firmware size --board {board}`); "
            "main.py goes as source"))
    return out


def run(options: Options) -> list[Figure]:
    figures = asyncio.run(_measure(options))
    figures += _image_figures(options.root / SECTION)
    allocations, why = press_path_allocations()
    figures.append(Figure(
        SECTION, "heap allocations on the press path", allocations, "allocations", 0.0,
        Better.LOWER, "",
        why or "pin IRQ, debounce, gesture, hand-over run under micropython.heap_lock(): "
        "tests/firmware/props.py press_path_allocation_free, as tests/test_press_path.py"))
    return figures
