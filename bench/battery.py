"""Benchmark section "battery": a battery-life model per board, for the two power modes, and the
press-to-alarm latency each mode costs. A model, not a measurement: it runs at once.

Inputs, read from the sources so that the model follows them when they change:

- each board module's figures (board/*.py): CAPACITY_MAH, the currents CURRENT_UA_* (chip:
  ACTIVE, IDLE, RADIO, LIGHT_SLEEP, DEEP_SLEEP; around it: BOARD, DIVIDER) and BOOT_MS, with
  their sources in comments there; a board whose wake_on_button() raises cannot sleep;
- the firmware's own numbers (`NAME = const(N)` in firmware/*.py, the defaults in config.py's
  LIMITS): the idle and burst advertising intervals, the burst's length, the heartbeat period
  of each mode, the sleep mode's linger and wake window, the hold;
- the assumptions below, for what neither states (each says where it comes from).

Charge is counted per event and per phase, as the firmware spends it:

- connected mode: the chip's IDLE current all the time (MicroPython keeps the CPU awake with
  Bluetooth on: no automatic light sleep), plus the radio for CONN_EVENT_MS at every connection
  event, plus a heartbeat's CPU work and notification each period;
- sleep mode: the chip's DEEP_SLEEP current between wakes, and per heartbeat wake a boot
  (BOOT_MS + FIRMWARE_START_MS at ACTIVE), advertising until the host connects, its session
  (encryption, subscriptions, TIME, the heartbeat), and the firmware's linger (IDLE with
  connection events); per press a wake as well, plus the rest of the hold and a full burst;
- always: the board's own current (regulator, LEDs) and the battery divider's; the cell's
  self-discharge; only USABLE_FRACTION of the capacity above the regulator's dropout.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from msa.tools.firmware import BOARD_DIR, FIRMWARE_DIR

from .figures import Better, Figure, Options

SECTION = "battery"
BOARDS = ("xiao_esp32c3", "esp32_devkitc", "pico_w")
REFERENCE = "xiao_esp32c3"  # the reference button, which the targets are for
TARGET_CONNECTED_DAYS = 7.0  # issue 6
TARGET_SLEEP_DAYS = 182.0  # issue 6: six months

# --- assumptions ---------------------------------------------------------------------------
# The connection interval: the firmware cannot ask for one (MicroPython's bluetooth module has
# no connection parameter update for a peripheral), so the host's default rules: Linux asks
# 30-50 ms (hci le_conn_min/max_interval 0x18/0x28, latency 0), Android's balanced priority
# 30-50 ms. The low end, worst for the battery.
HOST_INTERVAL_MS = 30.0
HOST_LATENCY = 0
# Android's CONNECTION_PRIORITY_LOW_POWER: 100-125 ms with peripheral latency 2 (a host can
# ask for it; BlueZ through main.conf [LE] settings).
LOW_POWER_INTERVAL_MS = 125.0
LOW_POWER_LATENCY = 2
CONN_EVENT_MS = 1.0  # radio on per empty connection event: ramp-up, RX window, two empty PDUs
ADV_EVENT_MS = 2.0  # radio on per connectable advertising event on three channels
LIGHT_SLEEP_WAKE_MS = 1.0  # CPU awake per radio event under automatic light sleep (< 1 ms
#                            wake-up: Espressif's ESP32-C3 book, "Light-sleep Mode")
FIRMWARE_START_MS = 400.0  # estimate: importing ~20 .mpy modules, four flash records with a
#                            bit-wise CRC-32, NimBLE's start
ROM_BOOT_MS = 150.0  # estimate: ROM and bootloader before MicroPython's ticks start (the
#                      Arduino wake-to-sleep of 190 ms in the forum thread BOOT_MS cites)
FIND_ADVERTS = 1.0  # idle adverts until a continuously scanning host connects
SESSION_EVENTS = 20  # connection events for a wake's session: encryption 4, MTU 2, two
#                      subscriptions 4, challenge read and TIME 4, heartbeat and slack 6
IDLE_80MHZ_RATIO = 18 / 21  # ESP32-C3 datasheet Table 5-8: CPU idle at 80 vs 160 MHz (mA)
HEARTBEAT_WORK_MS = 30.0  # CPU running for a heartbeat: ADC, HMAC frame, notification
PRESSES_PER_DAY = 1.0  # a test or a tap a day; real alarms are far rarer
USABLE_FRACTION = 0.9  # LiPo capacity above ~3.5 V, where a 3.3 V regulator drops out
#                        (firmware/battery.py's curve: 5 % left at 3.61 V)
SELF_DISCHARGE_PCT_MONTH = 3.0  # a typical Li-ion/LiPo figure with its protection circuit
#                                 (Battery University BU-802b: 1-2 %/month plus the circuit)
DAY_S = 86400.0


@dataclass(frozen=True)
class Board:
    """A board's figures, in µA, ms and mAh (board/<name>.py)."""

    name: str
    capacity_mah: float
    active_ua: float
    idle_ua: float
    radio_ua: float
    light_sleep_ua: float
    deep_sleep_ua: float
    board_ua: float
    divider_ua: float
    boot_ms: float
    can_sleep: bool  # wakes from deep sleep on its button


@dataclass(frozen=True)
class Firmware:
    """The firmware's numbers the model uses (firmware/*.py)."""

    idle_interval_ms: float
    burst_interval_ms: float
    burst_ms: float
    heartbeat_s: float  # connected mode's default
    sleep_heartbeat_s: float  # sleep mode's default: the timer wake
    linger_ms: float
    wake_window_ms: float
    hold_ms: float


@dataclass(frozen=True)
class Link:
    """The connection the host keeps: interval and peripheral latency."""

    interval_ms: float = HOST_INTERVAL_MS
    latency: int = HOST_LATENCY

    @property
    def event_period_ms(self) -> float:
        """How often an idle peripheral must listen."""
        return self.interval_ms * (self.latency + 1)


def _module(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def constants(path: Path) -> dict[str, int]:
    """Every module-level `NAME = const(N)` (or `_NAME = ...`) of a firmware source."""
    out: dict[str, int] = {}
    for node in _module(path).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name) and node.value.func.id == "const"
                and len(node.value.args) == 1):
            value = ast.literal_eval(node.value.args[0])
            if isinstance(value, int):
                out[node.targets[0].id] = value
    return out


def _literal(path: Path, name: str) -> object:
    for node in _module(path).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == name):
            return ast.literal_eval(node.value)
    raise KeyError(f"{path.name} has no {name}")


def _number(path: Path, name: str) -> float:
    value = _literal(path, name)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{path.name}: {name} is not a number")
    return float(value)


def _raises(path: Path, function: str) -> bool:
    """Whether a board function does nothing but raise (the board lacks the feature)."""
    for node in _module(path).body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            body = [n for n in node.body if not isinstance(n, ast.Expr)]  # docstring
            return bool(body) and isinstance(body[0], ast.Raise)
    return True


def load_firmware(folder: Path = FIRMWARE_DIR) -> Firmware:
    """The firmware's numbers, read from its sources."""
    advert = constants(folder / "advert.py")
    power = constants(folder / "power.py")
    limits = _literal(folder / "config.py", "LIMITS")
    if not isinstance(limits, dict):
        raise ValueError("config.py: LIMITS is not a dict")
    return Firmware(idle_interval_ms=advert["IDLE_INTERVAL_US"] / 1000,
                    burst_interval_ms=advert["BURST_INTERVAL_US"] / 1000,
                    burst_ms=advert["BURST_MS"], heartbeat_s=limits["heartbeat_s"][0],
                    sleep_heartbeat_s=power["SLEEP_HEARTBEAT_S"],
                    linger_ms=power["_LINGER_MS"], wake_window_ms=power["_WAKE_WINDOW_MS"],
                    hold_ms=limits["hold_ms"][0])


def load_board(name: str, folder: Path = BOARD_DIR) -> Board:
    """A board's figures, read from its module."""
    path = folder / f"{name}.py"

    def ua(what: str) -> float:
        return _number(path, f"CURRENT_UA_{what}")
    can_sleep = not _raises(path, "wake_on_button")
    return Board(name, _number(path, "CAPACITY_MAH"), ua("ACTIVE"), ua("IDLE"), ua("RADIO"),
                 ua("LIGHT_SLEEP"), ua("DEEP_SLEEP"), ua("BOARD"), ua("DIVIDER"),
                 _number(path, "BOOT_MS") if can_sleep else 0.0, can_sleep)


# --- the model -----------------------------------------------------------------------------

def life_days(board: Board, average_ua: float) -> float:
    """Days on the board's cell at an average load, with the cell's self-discharge."""
    self_ua = board.capacity_mah * 1000 * SELF_DISCHARGE_PCT_MONTH / 100 / (30 * 24)
    return board.capacity_mah * 1000 * USABLE_FRACTION / (average_ua + self_ua) / 24


def always_ua(board: Board) -> float:
    """Drawn whatever the chip does: the board's own parts and the battery divider."""
    return board.board_ua + board.divider_ua


def connected_ua(board: Board, fw: Firmware, link: Link = Link(), idle_ua: float | None = None,
                 light_sleep: bool = False) -> float:
    """Average current with a host connected for good. `idle_ua` replaces the chip's floor
    (a lower CPU clock); `light_sleep` models ESP-IDF's automatic light sleep instead of
    MicroPython (the chip sleeps between radio events, awake LIGHT_SLEEP_WAKE_MS for each)."""
    floor = board.idle_ua if idle_ua is None else idle_ua
    events_per_s = 1000 / link.event_period_ms
    event_uc = board.radio_ua * CONN_EVENT_MS / 1000
    if light_sleep:
        floor = board.light_sleep_ua
        event_uc += board.active_ua * LIGHT_SLEEP_WAKE_MS / 1000
    heartbeat_uc = ((board.active_ua - floor) * HEARTBEAT_WORK_MS
                    + board.radio_ua * CONN_EVENT_MS) / 1000
    return always_ua(board) + floor + event_uc * events_per_s + heartbeat_uc / fw.heartbeat_s


@dataclass(frozen=True)
class Wake:
    """One wake from deep sleep: the chip's charge (µC, beyond the always-on parts) and how
    long it stays up (ms)."""

    charge_uc: float
    awake_ms: float


def boot_ms(board: Board) -> float:
    """Wake to the firmware running: MicroPython's boot, then the firmware's own start."""
    return board.boot_ms + FIRMWARE_START_MS


def heartbeat_wake(board: Board, fw: Firmware, link: Link = Link()) -> Wake:
    """A timer wake: boot, advertise until the host connects, its session, the linger."""
    boot = boot_ms(board)
    find = FIND_ADVERTS * fw.idle_interval_ms
    session = SESSION_EVENTS * link.interval_ms
    linger_events = fw.linger_ms / link.event_period_ms
    charge = (board.active_ua * boot
              + board.idle_ua * (find + session + fw.linger_ms)
              + board.radio_ua * (FIND_ADVERTS * ADV_EVENT_MS
                                  + (SESSION_EVENTS + linger_events) * CONN_EVENT_MS)
              + (board.active_ua - board.idle_ua) * HEARTBEAT_WORK_MS) / 1000
    return Wake(charge, boot + find + session + fw.linger_ms)


def press_wake(board: Board, fw: Firmware, link: Link = Link()) -> Wake:
    """A wake by a hold: as a timer wake, plus the rest of the hold once booted and, at most,
    a whole alarm burst (it stops once the host connects)."""
    base = heartbeat_wake(board, fw, link)
    waiting = max(0.0, ROM_BOOT_MS + fw.hold_ms - boot_ms(board))
    burst_events = fw.burst_ms / fw.burst_interval_ms
    charge = base.charge_uc + (board.idle_ua * waiting
                               + board.radio_ua * ADV_EVENT_MS * burst_events) / 1000
    return Wake(charge, base.awake_ms + waiting)


def absent_wake(board: Board, fw: Firmware) -> Wake:
    """A timer wake with no host in range: boot, then idle adverts for the whole window."""
    adverts = fw.wake_window_ms / fw.idle_interval_ms
    charge = (board.active_ua * boot_ms(board) + board.idle_ua * fw.wake_window_ms
              + board.radio_ua * ADV_EVENT_MS * adverts) / 1000
    return Wake(charge, boot_ms(board) + fw.wake_window_ms)


def sleep_ua(board: Board, fw: Firmware, link: Link = Link(), host_present: bool = True,
             heartbeat_s: float | None = None) -> float:
    """Average current in sleep mode: deep sleep, a wake per heartbeat period (which starts
    when the button falls asleep) and PRESSES_PER_DAY press wakes."""
    period_s = fw.sleep_heartbeat_s if heartbeat_s is None else heartbeat_s
    beat = heartbeat_wake(board, fw, link) if host_present else absent_wake(board, fw)
    press = press_wake(board, fw, link)
    beats = DAY_S / (period_s + beat.awake_ms / 1000)
    awake_s = (beats * beat.awake_ms + PRESSES_PER_DAY * press.awake_ms) / 1000
    charge_uc = (beats * beat.charge_uc + PRESSES_PER_DAY * press.charge_uc
                 + board.deep_sleep_ua * max(0.0, DAY_S - awake_s))
    return always_ua(board) + charge_uc / DAY_S


def shortest_heartbeat_s(board: Board, fw: Firmware, days: float) -> float:
    """The shortest sleep-mode heartbeat period that still lasts `days` (bisection), or inf
    if no period does."""
    lo, hi = 1.0, 30 * DAY_S
    if life_days(board, sleep_ua(board, fw, heartbeat_s=hi)) < days:
        return float("inf")
    for _ in range(60):
        mid = (lo + hi) / 2
        if life_days(board, sleep_ua(board, fw, heartbeat_s=mid)) >= days:
            hi = mid
        else:
            lo = mid
    return hi


def light_sleep_interval_ms(board: Board, fw: Firmware, days: float) -> float:
    """Under automatic light sleep, the shortest connection interval (latency 0) that still
    lasts `days` (bisection), or inf if none does."""
    lo, hi = 7.5, 4000.0
    if life_days(board, connected_ua(board, fw, Link(hi), light_sleep=True)) < days:
        return float("inf")
    for _ in range(60):
        mid = (lo + hi) / 2
        if life_days(board, connected_ua(board, fw, Link(mid), light_sleep=True)) >= days:
            hi = mid
        else:
            lo = mid
    return hi


def press_to_host_ms(board: Board, fw: Firmware, sleeping: bool, link: Link = Link()) -> float:
    """Press to the alarm at the host. Connected: the hold, then at most one connection
    interval (a peripheral with data sends at the next event, whatever its latency). Asleep:
    the hold counts from the firmware's first tick (ROM_BOOT_MS after the press; the boot runs
    during the hold), then the first burst advert reaches the continuously scanning host."""
    if not sleeping:
        return fw.hold_ms + link.interval_ms
    return max(ROM_BOOT_MS + fw.hold_ms, boot_ms(board)) + fw.burst_interval_ms


# --- figures -------------------------------------------------------------------------------

def _ma(ua: float) -> str:
    return f"{ua / 1000:.2f} mA" if ua >= 1000 else f"{ua:.0f} µA"


def board_figures(board: Board, fw: Firmware) -> list[Figure]:
    """Life in each mode, with the average current and what limits it in the note."""
    ref = board.name == REFERENCE
    conn = connected_ua(board, fw)
    out = [Figure(
        SECTION, f"{board.name}: connected mode, life", life_days(board, conn), "days",
        TARGET_CONNECTED_DAYS if ref else None, Better.HIGHER,
        floor=f"MicroPython's awake CPU: {_ma(board.idle_ua)} idle (no light sleep with "
              "Bluetooth on)",
        note=f"{_ma(conn)} average: CPU idle {_ma(board.idle_ua)}, connection events every "
             f"{HOST_INTERVAL_MS:.0f} ms {_ma(conn - board.idle_ua - always_ua(board))}, "
             f"board and divider {_ma(always_ua(board))}; {board.capacity_mah:.0f} mAh")]
    if not board.can_sleep:
        out.append(Figure(SECTION, f"{board.name}: sleep mode, life", None, "days",
                          note="no sleep mode: the board cannot wake from deep sleep on its "
                               "button under MicroPython (wake_on_button raises)"))
        return out
    asleep = sleep_ua(board, fw)
    beat = heartbeat_wake(board, fw)
    floor_ua = always_ua(board) + board.deep_sleep_ua
    out.append(Figure(
        SECTION, f"{board.name}: sleep mode, life", life_days(board, asleep), "days",
        TARGET_SLEEP_DAYS if ref else None, Better.HIGHER,
        floor=f"deep sleep with nothing awake: {life_days(board, floor_ua):,.0f} days "
              f"({floor_ua:.0f} µA: chip, board, divider)",
        note=f"{_ma(asleep)} average; a wake each {fw.sleep_heartbeat_s / 60:.0f} min costs "
             f"{beat.charge_uc / 1000:.0f} mC over {beat.awake_ms / 1000:.1f} s awake (boot "
             f"{boot_ms(board) / 1000:.2f} s, linger {fw.linger_ms / 1000:.1f} s); "
             f"{PRESSES_PER_DAY:g} press a day"))
    out.append(Figure(SECTION, f"{board.name}: sleep mode, charge per heartbeat wake",
                      beat.charge_uc / 1000, "mC",
                      note=f"boot alone: {board.active_ua * boot_ms(board) / 1e6:.0f} mC"))
    return out


def reference_figures(board: Board, fw: Firmware) -> list[Figure]:
    """For the reference button: what was tried against the connected target, the
    heartbeat period's margin, a host out of range, and the latency of each mode."""
    days = TARGET_CONNECTED_DAYS
    conn80 = connected_ua(board, fw, idle_ua=board.idle_ua * IDLE_80MHZ_RATIO)
    low = Link(LOW_POWER_INTERVAL_MS, LOW_POWER_LATENCY)
    light = connected_ua(board, fw, light_sleep=True)
    needed = light_sleep_interval_ms(board, fw, days)
    shortest = shortest_heartbeat_s(board, fw, TARGET_SLEEP_DAYS)
    absent = sleep_ua(board, fw, host_present=False)
    name = board.name
    return [
        Figure(SECTION, f"{name}: connected, CPU at 80 MHz (machine.freq)",
               life_days(board, conn80), "days", days, Better.HIGHER,
               note="the firmware could lower the clock (BLE needs 80 MHz at least): CPU idle "
                    f"{_ma(board.idle_ua)} -> {_ma(board.idle_ua * IDLE_80MHZ_RATIO)}"),
        Figure(SECTION, f"{name}: connected, host asks {LOW_POWER_INTERVAL_MS:.0f} ms, "
                        f"latency {LOW_POWER_LATENCY}",
               life_days(board, connected_ua(board, fw, low)), "days", days, Better.HIGHER,
               note="the host's choice (Android's low-power priority, BlueZ main.conf): "
                    "MicroPython gives a peripheral no way to ask"),
        Figure(SECTION, f"{name}: connected, ESP-IDF auto light sleep, "
                        f"{HOST_INTERVAL_MS:.0f} ms", life_days(board, light), "days", days,
               Better.HIGHER,
               note=f"{_ma(light)}: not MicroPython (needs CONFIG_PM_ENABLE, tickless idle and "
                    "Bluetooth modem sleep with the 32 kHz crystal)"),
        Figure(SECTION, f"{name}: connected, event period for {days:.0f} days with light sleep",
               needed, "ms",
               note="auto light sleep plus a connection interval this long (or a shorter one "
                    "with peripheral latency) reaches the connected target"),
        Figure(SECTION, f"{name}: sleep mode, host out of range", life_days(board, absent),
               "days", note=f"each wake advertises for the {fw.wake_window_ms / 1000:.0f} s "
                            "window, then sleeps"),
        Figure(SECTION, f"{name}: sleep mode, shortest heartbeat for "
                        f"{TARGET_SLEEP_DAYS:.0f} days", shortest / 60, "min",
               note=f"the firmware's {fw.sleep_heartbeat_s / 60:.0f} min leaves the margin"),
        Figure(SECTION, f"{name}: press to alarm at host, connected",
               press_to_host_ms(board, fw, False), "ms",
               floor=f"the hold ({fw.hold_ms:,.0f} ms, against accidental presses) plus one "
                     "connection interval (7.5 ms at least)",
               note=f"at a {HOST_INTERVAL_MS:.0f} ms interval"),
        Figure(SECTION, f"{name}: press to alarm at host, sleep mode",
               press_to_host_ms(board, fw, True), "ms",
               floor=f"the hold plus the ROM boot before MicroPython's clock "
                     f"(~{ROM_BOOT_MS:.0f} ms)",
               note=f"the {boot_ms(board):.0f} ms boot runs during the hold, which counts "
                    f"from the wake; the first burst advert ({fw.burst_interval_ms:.0f} ms "
                    "interval) reaches a scanning host"),
    ]


def figures(firmware_dir: Path = FIRMWARE_DIR, board_dir: Path = BOARD_DIR,
            boards: tuple[str, ...] = BOARDS) -> list[Figure]:
    """The section's figures from the given sources."""
    fw = load_firmware(firmware_dir)
    out: list[Figure] = []
    for name in boards:
        board = load_board(name, board_dir)
        out += board_figures(board, fw)
        if name == REFERENCE:
            out += reference_figures(board, fw)
    return out


def run(options: Options) -> list[Figure]:
    """The battery section (a model: `options` change nothing)."""
    return figures()

