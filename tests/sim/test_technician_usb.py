"""msa flash, provision and wipe, run as a technician runs them, with the real mpremote against
a virtual board's REPL over socket:// (as against a button on USB)."""
from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from msa.centre.registry import Case, Registry
from msa.simulator.air import Air
from msa.simulator.vboard import VirtualBoard
from msa.tools import device, provisioning
from msa.tools import firmware as fw
from msa.tools.usb import Usb

ROOT = Path(__file__).resolve().parent.parent.parent
MPREMOTE = str(Path(sys.executable).parent / "mpremote")
T = TypeVar("T")


async def msa(*args: str) -> tuple[int, str, str]:
    """The msa command as a subprocess, so its error boundary (tools.cli.main) is in play."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "msa.tools.cli", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return int(proc.returncode or 0), out.decode(), err.decode()


@asynccontextmanager
async def board_on(flash: Path, install: bool) -> AsyncIterator[str]:
    """A virtual board with its REPL on a TCP port; yields the port as msa takes it."""
    flash.mkdir(parents=True, exist_ok=True)
    board = VirtualBoard(Air(), flash)
    if install:
        board.install()
    port = await board.start_console()
    try:
        yield f"socket://127.0.0.1:{port}"
    finally:
        await board.close()


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())


def record(flash: Path, name: str) -> bytes | None:
    """A store record decoded straight from the flash folder's slot files (firmware/store.py's
    layout: magic, generation, length, payload, CRC-32 of all but the magic)."""
    best_gen, best = 0, None
    for slot in ("a", "b", "tmp"):
        path = flash / f"{name}.{slot}"
        if not path.exists():
            continue
        raw = path.read_bytes()
        magic, gen, length = struct.unpack_from(">4sIH", raw)
        end = 10 + length
        if (magic == b"MSA1" and len(raw) == end + 4 and gen > best_gen
                and struct.unpack_from(">I", raw, end)[0] == zlib.crc32(raw[4:end])):
            best_gen, best = gen, raw[10:end]
    return best


def put_record(flash: Path, name: str, payload: bytes) -> None:
    """Writes a record as the firmware would (first generation, slot a)."""
    body = struct.pack(">4sIH", b"MSA1", 1, len(payload)) + payload
    (flash / f"{name}.a").write_bytes(body + struct.pack(">I", zlib.crc32(body[4:])))


def config_on(flash: Path) -> dict[str, object] | None:
    raw = record(flash, "config")
    return None if raw is None else dict(json.loads(raw))


def test_flash_onto_an_empty_board_verifies_boots_and_removes_stale_files(tmp_path: Path) -> None:
    flash = tmp_path / "flash"
    before: list[Path] = []
    flashed: list[Path] = []
    progress: list[str] = []

    async def go() -> dict[str, tuple[int, str, str]]:
        async with board_on(flash, install=False) as port:
            out = {"unflashed": await msa("provision", "--port", port, "--case", "GENT-2026-0147",
                                          "--registry", str(registry_with_case(tmp_path))),
                   "wrong": await msa("flash", "--port", port, "--board", "pico_w")}
            before.extend(flash.iterdir())
            out["flash"] = await msa("flash", "--port", port, "--board", "sim")
            flashed.extend(flash.iterdir())
            # A module left by an older firmware, and the port's own boot script.
            (flash / "frame.py").write_text("raise ImportError('stale')\n")
            (flash / "boot.py").write_text("\n")
            out["again"] = await msa("flash", "--port", port, "--board", "sim")
            progress.extend(await asyncio.to_thread(flash_with_progress, port, tmp_path / "mpy"))
            proc = await asyncio.create_subprocess_exec(
                MPREMOTE, "connect", port, "exec",
                "import frame, version; print(version.VERSION)",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            text, _ = await asyncio.wait_for(proc.communicate(), 30)
            out["version"] = (int(proc.returncode or 0), text.decode(), "")
            return out
    out = run(go)
    assert out["unflashed"][0] == 1
    assert out["unflashed"][2].startswith("msa: no msa firmware on the device on socket://")
    assert out["wrong"][0] == 1
    assert "board 'pico_w' needs MicroPython's rp2 port" in out["wrong"][2]
    assert before == []  # refused before anything was copied

    code, stdout, stderr = out["flash"]
    assert code == 0, stderr
    assert "firmware 0.1.0 for board sim" in stdout and "verified" in stdout
    expected = {f.name for f in fw.device_files("sim")}
    names = {p.name for p in flashed}
    # Every module as .mpy but the entry point, which the ports run as main.py.
    assert names == {Path(n).stem + ".mpy" for n in expected if n != "main.py"} | {"main.py"}
    assert (flash / "main.py").read_bytes() == (fw.FIRMWARE_DIR / "main.py").read_bytes()
    assert (flash / "board.mpy").read_bytes()[:2] == b"M\x06"

    code, stdout, stderr = out["again"]
    assert code == 0, stderr
    assert "removed stale: frame.py" in stdout
    assert not (flash / "frame.py").exists() and (flash / "boot.py").exists()
    assert out["version"] == (0, "0.1.0\n", "")
    # The progress bar moves once per file, as mpremote finishes each.
    assert progress == [f.name for f in device.build_image("sim", tmp_path / "mpy2").files]


def flash_with_progress(port: str, folder: Path) -> list[str]:
    """The library under `msa flash`, with the names its progress callback saw."""
    seen: list[str] = []
    image = device.build_image("sim", folder)
    device.flash(device.check_port(Usb(port), image), seen.append)
    return seen


def test_flash_refuses_an_unknown_board() -> None:
    code, _, stderr = run(lambda: msa("flash", "--port", "socket://127.0.0.1:9", "--board",
                                      "nope"))
    assert code == 1
    assert stderr.startswith("msa: unknown board 'nope'; choose one of")
    assert "sim" in stderr


def test_flash_where_nothing_listens_says_no_device() -> None:
    with socket.socket() as s:  # a port that was free a moment ago, and is closed again
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, stderr = run(lambda: msa("flash", "--port", f"socket://127.0.0.1:{port}",
                                      "--board", "sim"))
    assert code == 1
    assert stderr.startswith(f"msa: no device on socket://127.0.0.1:{port} ")
    assert "plug the button in" in stderr and "Traceback" not in stderr


def test_flash_to_something_that_is_not_micropython_says_so() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 smtp.example ESMTP ready\r\n")
        try:
            while await reader.read(1024):
                writer.write(b"500 what?\r\n")
        finally:
            writer.close()

    async def go() -> tuple[int, str, str]:
        server = await asyncio.start_server(garbage, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await msa("flash", "--port", f"socket://127.0.0.1:{port}", "--board", "sim")
        finally:
            server.close()
            await server.wait_closed()
    code, _, stderr = run(go)
    assert code == 1
    assert stderr.startswith("msa: no MicroPython device on socket://127.0.0.1:")
    assert "install MicroPython" in stderr and "Traceback" not in stderr


def registry_with_case(folder: Path) -> Path:
    path = folder / "registry.sqlite"
    registry = Registry(path)
    registry.put_case(Case("GENT-2026-0147", "Jane Example", victim_phone="+32470000001",
                           suspect="John Example"))
    registry.close()
    return path


def test_provision_writes_only_the_config_registers_the_key_and_wipe_erases_it(
        tmp_path: Path) -> None:
    flash = tmp_path / "flash"
    reg = registry_with_case(tmp_path)
    key_file = tmp_path / "button.key"
    common = ("--case", "GENT-2026-0147", "--registry", str(reg))

    runs: dict[str, tuple[int, str, str]] = {}
    configs: dict[str, dict[str, object] | None] = {}

    async def go() -> None:
        async with board_on(flash, install=True) as port:
            runs["unknown case"] = await msa("provision", "--port", port, "--case", "NOPE",
                                             "--registry", str(reg))
            runs["first"] = await msa("provision", "--port", port, *common,
                                      "--key-out", str(key_file))
            configs["first"] = config_on(flash)
            runs["again"] = await msa("provision", "--port", port, *common)
            runs["forced"] = await msa("provision", "--port", port, *common, "--force",
                                       "--button-id", "1a2b3c4d", "--gesture", "multi")
            configs["forced"] = config_on(flash)
            # Records the running firmware keeps, to show that the wipe takes them too.
            put_record(flash, "bonds", json.dumps([[1, "aa" * 16, "bb" * 16]]).encode())
            put_record(flash, "counters", struct.pack(">II", 3, 96))
            put_record(flash, "outbox", b"\x00" * 8)
            runs["wrong button"] = await msa("wipe", "--port", port, "--button-id", "99")
            runs["wipe"] = await msa("wipe", "--port", port, "--button-id", "1a2b3c4d")
            runs["wipe again"] = await msa("wipe", "--port", port)
    run(go)

    code, _, stderr = runs["unknown case"]
    assert code == 1 and stderr.startswith("msa: no case 'NOPE' in the registry")
    assert "add the case" in stderr

    code, stdout, stderr = runs["first"]
    assert code == 0, stderr
    cfg = configs["first"]
    assert cfg is not None
    button_id, key_hex = int(str(cfg["button_id"])), str(cfg["key"])
    assert 0 < button_id < 2 ** 32 and len(key_hex) == 64 and cfg["gesture"] == "hold"
    assert f"provisioned button {button_id:08x} for case GENT-2026-0147" in stdout
    # K: on the button and in the 0600 key file (the host's). K_c: on the button and in the
    # registry (the centre's), never in the host's key file. Neither is ever printed.
    centre_hex = str(cfg["centre_key"])
    assert len(centre_hex) == 64 and centre_hex != key_hex
    assert key_file.read_text() == key_hex + "\n"
    assert key_file.stat().st_mode & 0o777 == 0o600
    for secret in (key_hex, centre_hex):
        assert secret not in stdout + stderr and secret.upper() not in stdout + stderr
    registry = Registry(reg)
    try:
        assert registry.key(button_id) == bytes.fromhex(centre_hex)
        case = registry.case_of(button_id)
        assert case is not None and case.case_ref == "GENT-2026-0147"
        assert registry.key(0x1A2B3C4D) is not None  # the forced re-provisioning below
    finally:
        registry.close()

    code, _, stderr = runs["again"]
    assert code == 1
    assert stderr.startswith("msa: the button on socket://127.0.0.1:")
    assert f"already provisioned (button {button_id:08x})" in stderr and "--force" in stderr

    code, stdout, stderr = runs["forced"]
    assert code == 0, stderr
    forced = configs["forced"]
    assert forced is not None
    assert forced["button_id"] == 0x1A2B3C4D and forced["gesture"] == "multi"
    assert forced["key"] != key_hex and str(forced["key"]) not in stdout + stderr
    assert f"replaced: {button_id:08x}" in stdout

    code, _, stderr = runs["wrong button"]
    assert code == 1 and "is button 1a2b3c4d, not button 00000099" in stderr

    code, stdout, stderr = runs["wipe"]
    assert code == 0, stderr
    assert "wiped (button 1a2b3c4d)" in stdout
    assert "config, bonds, counters, outbox" in stdout
    assert sorted(p.name for p in flash.iterdir() if p.suffix in (".a", ".b", ".tmp")) == []
    code, stdout, _ = runs["wipe again"]
    assert code == 0 and "not provisioned" in stdout

    # No personal data ever went on the button.
    for path in flash.iterdir():
        data = path.read_bytes()
        assert b"Jane" not in data and b"GENT-2026" not in data and b"+3247" not in data


def test_every_usb_command_has_an_example_in_its_help() -> None:
    async def go() -> list[tuple[int, str, str]]:
        return [await msa(name, "--help") for name in ("flash", "provision", "wipe")]
    for code, stdout, _ in run(go):
        assert code == 0 and "Example: msa " in stdout


class SlowUsb(Usb):
    """A slow line or a slow technician: a pause longer than the firmware's watchdog period
    (8 s) before one mpremote session, with the button stopped at the REPL since the last."""

    def __init__(self, port: str, pause_before: int, timeouts: list[int | None],
                 board: VirtualBoard) -> None:
        super().__init__(port)
        self._runs = 0
        self._pause_before = pause_before
        self._timeouts = timeouts
        self._board = board

    def run(self, step: str, *args: str, line: Callable[[str], None] | None = None) -> str:
        self._runs += 1
        self._timeouts.append(self._board.wdt.timeout_ms)
        if self._runs == self._pause_before:
            time.sleep(8.5)
        return super().run(step, *args, line=line)


def test_flash_provision_and_wipe_hold_a_running_buttons_watchdog(tmp_path: Path) -> None:
    """The firmware's watchdog (8 s) cannot be stopped and survives mpremote's Ctrl-C and soft
    reset (simulator/wdt.py). Each USB command on a running, provisioned button pauses 8.5 s
    between two of its sessions: the watchdog never bites, and every command completes."""
    flash = tmp_path / "flash"
    reg = registry_with_case(tmp_path)
    seen: list[int | None] = []

    async def go() -> tuple[int, str, str]:
        flash.mkdir(parents=True)
        board = VirtualBoard(Air(), flash)
        board.install()
        port = f"socket://127.0.0.1:{await board.start_console()}"
        try:
            first = await msa("provision", "--port", port, "--case", "GENT-2026-0147",
                              "--registry", str(reg))
            await running(board)
            await asyncio.to_thread(provisioning.provision, SlowUsb(port, 2, seen, board), reg,
                                    "GENT-2026-0147", 0x1A2B3C4D, "hold", True, None)
            await running(board)
            image = device.build_image("sim", tmp_path / "mpy")
            await asyncio.to_thread(
                lambda: device.flash(device.check_port(SlowUsb(port, 2, seen, board), image),
                                     lambda _name: None))
            await running(board)
            await asyncio.to_thread(provisioning.wipe, SlowUsb(port, 2, seen, board), 0x1A2B3C4D)
            assert board.wdt.bites == 0
            return first
        finally:
            await board.close()
    code, _, stderr = run(go)
    assert code == 0, stderr
    assert 8000 in seen and 300000 in seen  # the firmware's watchdog, then the tools' hold
    assert config_on(flash) is None  # wiped at last


async def running(board: VirtualBoard) -> None:
    """Waits (bounded) until the firmware runs and has started its 8 s watchdog."""
    for _ in range(400):
        if board.wdt.timeout_ms == 8000:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"watchdog: {board.wdt.timeout_ms}")
