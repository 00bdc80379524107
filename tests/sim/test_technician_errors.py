"""Every error a technician can meet (docs/technician.md, "When a command fails"), run as the
technician runs the command (a subprocess, so that the CLI's error boundary is in play): each
ends in one `msa: <what went wrong and what to do>` line and a non-zero exit, and leaves the
registry, the button's flash, the host's state and bonds as they were (or as far as a second
run can finish). The USB faults are a virtual board's (simulator/faults.py): real MicroPython
and the real mpremote, on a flash that corrupts, refuses or misreports as a device can.

Errors tested elsewhere: no device behind a socket:// port and something that is not
MicroPython on it, the wrong board, an unflashed device, an unknown case, a button that is
already provisioned, a wipe of the wrong button (test_technician_usb.py); a retired button id
(test_cli.py); a button out of range and a key mismatch (test_technician_ble.py); no Bluetooth
adapter (test_technician_ble.py, on a machine without BlueZ)."""
from __future__ import annotations

import asyncio
import grp
import os
import pty
import shutil
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import store
from bonds import Bonds

from msa.centre.registry import Registry
from msa.host.outbox import Outbox
from msa.simulator.air import Air
from msa.simulator.chain import Chain
from msa.simulator.faults import Faults
from msa.simulator.radio import serve_radio
from msa.simulator.vboard import VirtualBoard
from msa.tools import device
from msa.tools.usb import Usb

from test_technician_usb import ROOT, config_on, msa, record, registry_with_case, run

CASE = "GENT-2026-0147"


@asynccontextmanager
async def bench(flash: Path, cfg: dict[str, object] | None = None
                ) -> AsyncIterator[tuple[VirtualBoard, str]]:
    """A virtual board with the firmware on its flash (as an older `msa flash` left it, .py
    modules), provisioned with `cfg` if given, and its REPL on a TCP port; yields it and the
    port as msa takes it. Provisioned before the console starts: the firmware runs behind the
    REPL and writes its own records, so a second interpreter writing at the same time would
    race it on the flash."""
    board = VirtualBoard(Air(), flash)
    board.install()
    if cfg is not None:
        await board.provision(cfg)
    port = await board.start_console()
    try:
        yield board, f"socket://127.0.0.1:{port}"
    finally:
        await board.close()


def snapshot(flash: Path, records: bool = False) -> dict[str, bytes]:
    """The files on the flash: its modules, or (records=True) the firmware's store records."""
    return {p.name: p.read_bytes() for p in sorted(flash.iterdir())
            if p.is_file() and (p.suffix in (".a", ".b", ".tmp")) == records}


def one_line(stderr: str) -> str:
    """The error, which must be the only thing on stderr."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("msa: "), stderr
    return lines[0]


def last_line(stderr: str) -> str:
    """The error that ends a command which ran the host's pipeline: the host's own warnings
    (a message not delivered, tried again) may come before it, a traceback never."""
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith("msa: ") and "Traceback" not in stderr, stderr
    return lines[-1]


def test_flash_refuses_a_foreign_mpy_a_corrupted_file_and_a_failed_boot(tmp_path: Path) -> None:
    """A provisioned button, flashed again: each failure says what to do and leaves its key
    and configuration as they were."""
    flash = tmp_path / "flash"
    cfg = {"button_id": 0x0A0B0C0D, "key": "5a" * 32, "centre_key": "c3" * 32}
    out: dict[str, tuple[int, str, str]] = {}
    seen: dict[str, dict[str, bytes]] = {}

    async def go() -> None:
        async with bench(flash, cfg) as (board, port):
            seen["before"] = snapshot(flash)
            seen["config"] = {n: b for n, b in snapshot(flash, True).items()
                              if n.startswith("config.")}
            board.faults = Faults(mpy_version=5)  # a MicroPython of 1.12 to 1.18
            out["mpy"] = await msa("flash", "--port", port, "--board", "sim")
            seen["mpy"] = snapshot(flash)
            board.faults = Faults(corrupt_writes=("app.mpy",))
            out["corrupt"] = await msa("flash", "--port", port, "--board", "sim")
            seen["corrupt"] = snapshot(flash)
            board.faults = Faults(missing_modules=("bluetooth",))  # the Pico's build, not the W's
            out["boot"] = await msa("flash", "--port", port, "--board", "sim")
    run(go)

    code, _, stderr = out["mpy"]
    assert code == 1
    assert one_line(stderr).startswith("msa: the device on socket://127.0.0.1:")
    assert "loads .mpy version 5, but mpy-cross writes version 6" in stderr
    assert "update MicroPython" in stderr
    assert seen["mpy"] == seen["before"]  # refused before anything was copied

    code, _, stderr = out["corrupt"]
    assert code == 1
    assert one_line(stderr).endswith("differ from those sent: app.mpy; flash again; if it"
                                     " persists, the flash is failing")
    # Only the corrupted file differs from the image; the old modules (found before .mpy)
    # are not removed until every file checks, so the button still runs its old firmware.
    image = device.build_image("sim", tmp_path / "image")
    assert [f.name for f in image.files
            if seen["corrupt"].get(f.name) != f.local.read_bytes()] == ["app.mpy"]
    assert seen["corrupt"]["app.py"] == seen["before"]["app.py"]

    code, _, stderr = out["boot"]
    assert code == 1
    line = one_line(stderr)
    assert line.startswith("msa: the firmware on socket://127.0.0.1:")
    assert "did not come up as version 0.1.0" in line
    assert "no module named 'bluetooth'" in line and "docs/boards.md" in line
    assert "check the cable" not in line  # the files were verified: not a cable fault

    # Through every failure the configuration stayed as it was, key and all.
    held = config_on(flash)
    assert held is not None and held["button_id"] == cfg["button_id"] and held["key"] == cfg["key"]
    assert {n: b for n, b in snapshot(flash, True).items() if n.startswith("config.")} == \
        seen["config"]


def registry_rows(path: Path) -> dict[int, tuple[bytes | None, str | None]]:
    """Every active button in the registry: its key and its case."""
    registry = Registry(path)
    try:
        return {b: (registry.key(b), c.case_ref if (c := registry.case_of(b)) else None)
                for b in registry.buttons()}
    finally:
        registry.close()


_BOND_SNIPPET = ("import store\nfrom bonds import Bonds\nb = Bonds(store.Store('.'))\n"
                 "b.set(2, b'old-host', b'keys')\nb.close_window()\nb.flush()\n")


def host_bond(flash: Path) -> bool:
    """Whether the button keeps the bond test_provision_and_wipe_... gave it, window closed."""
    bonds = Bonds(store.Store(str(flash)))
    return bonds.closed and bonds.get(2, 0, b"old-host") is not None


def test_provision_and_wipe_errors_register_nothing_and_keep_what_the_button_had(
        tmp_path: Path) -> None:
    flash = tmp_path / "flash"
    reg = registry_with_case(tmp_path)
    registry = Registry(reg)
    registry.register(0x1A2B3C4D, b"\x11" * 32, CASE)  # a button already in service
    registry.close()
    in_service = registry_rows(reg)
    key_file = tmp_path / "button.key"
    common = ("--case", CASE, "--registry", str(reg), "--key-out", str(key_file))
    out: dict[str, tuple[int, str, str]] = {}
    seen: dict[str, Any] = {}

    async def go() -> None:
        async with bench(flash) as (board, port):
            out["taken"] = await msa("provision", "--port", port, *common,
                                     "--button-id", "1a2b3c4d")
            seen["taken"] = (config_on(flash), registry_rows(reg), key_file.exists())
            # A flash page that stores every config record with a bit flipped.
            board.faults = Faults(corrupt_writes=("config.tmp",))
            out["fresh"] = await msa("provision", "--port", port, *common)
            seen["fresh"] = (config_on(flash), registry_rows(reg), key_file.exists())
            board.faults = Faults()
            out["good"] = await msa("provision", "--port", port, *common,
                                    "--button-id", "0b0b0b0b")
            seen["good"] = (config_on(flash), key_file.read_text())
            # Its host bonded: the button keeps that bond and closes its bond window.
            # Written by the board's own interpreter (mpremote stops the firmware first): a
            # second writer on the flash would race the running firmware's own records.
            await asyncio.to_thread(Usb(port).exec, "bond", _BOND_SNIPPET)
            board.faults = Faults(corrupt_writes=("config.tmp",))
            out["forced"] = await msa("provision", "--port", port, *common, "--force",
                                      "--button-id", "0c0c0c0c")
            seen["forced"] = (config_on(flash), registry_rows(reg), key_file.read_text(),
                              host_bond(flash))
            # Line noise turns one hex digit of the key into another on its way to the button.
            board.faults = Faults(garble_after=b'"key": "')
            out["garbled"] = await msa("provision", "--port", port, *common, "--force",
                                       "--button-id", "0d0d0d0d")
            seen["garbled"] = (config_on(flash), registry_rows(reg), key_file.read_text(),
                               host_bond(flash))
            # A block that cannot be erased: the config record's slots stay.
            board.faults = Faults(stuck_files=("config.a", "config.b"))
            out["wipe"] = await msa("wipe", "--port", port, "--button-id", "0b0b0b0b")
            seen["wipe"] = (config_on(flash), record(flash, "bonds"))
            board.faults = Faults()
            out["wipe again"] = await msa("wipe", "--port", port, "--button-id", "0b0b0b0b")
            seen["wiped"] = snapshot(flash, records=True)
    run(go)

    code, _, stderr = out["taken"]
    assert code == 1
    assert one_line(stderr) == (
        f"msa: button id 1a2b3c4d is already active in the registry {reg}; choose another"
        " --button-id, or leave it out for a random one; --force re-registers it")
    assert seen["taken"] == (None, in_service, False)  # the device was not touched

    code, _, stderr = out["fresh"]
    assert code == 1
    line = one_line(stderr)
    assert line.startswith("msa: the configuration read back from button ")
    assert "differs from the one written; provision again with --force" in line
    assert "Traceback" not in stderr and "TypeError" not in stderr
    # Nothing registered, no key file, and nothing readable on the button.
    assert seen["fresh"] == (None, in_service, False)

    assert out["good"][0] == 0, out["good"][2]
    good, good_key = seen["good"]
    assert good["button_id"] == 0x0B0B0B0B

    code, _, stderr = out["forced"]
    assert code == 1 and "differs from the one written" in one_line(stderr)
    config, rows, key_text, bonded = seen["forced"]
    # The button keeps its configuration, key and its host's bond (no open bond window);
    # the new id is not registered; the key file still holds the key the button has.
    assert config == good and bonded
    assert 0x0C0C0C0C not in rows and 0x0B0B0B0B in rows and key_text == good_key
    assert key_text == str(good["key"]) + "\n"

    code, _, stderr = out["garbled"]
    assert code == 1 and "differs from the one written" in one_line(stderr)
    config, rows, key_text, bonded = seen["garbled"]
    assert config == good and bonded  # the garbled key was never saved
    assert 0x0D0D0D0D not in rows and key_text == good_key

    code, _, stderr = out["wipe"]
    assert code == 1
    assert one_line(stderr).endswith(
        "after the wipe: config; run msa wipe again; if it persists, the flash is failing and"
        " the button must be destroyed")
    left, bonds_left = seen["wipe"]
    assert left == good and bonds_left is None  # what could go went; the rest is named

    code, stdout, stderr = out["wipe again"]
    assert code == 0, stderr
    assert "wiped (button 0b0b0b0b)" in stdout
    assert not any(n.startswith(("config.", "bonds.")) for n in seen["wiped"])


def test_a_missing_serial_device_says_so_and_registers_nothing(tmp_path: Path) -> None:
    reg = registry_with_case(tmp_path)
    port = f"/dev/ttyACM-msa-absent-{os.getpid()}"
    assert not os.path.exists(port)
    code, _, stderr = run(lambda: msa("provision", "--port", port, "--case", CASE,
                                      "--registry", str(reg), "--key-out",
                                      str(tmp_path / "button.key")))
    assert code == 1
    assert one_line(stderr) == (
        f"msa: no device on {port} (mpremote could not open it); plug the button in, check"
        " the port (a /dev/tty* device or socket://HOST:PORT) and that no other program has"
        " it open")
    assert registry_rows(reg) == {} and not (tmp_path / "button.key").exists()


def as_unprivileged() -> list[str]:
    """The command prefix that runs msa as a user without root's powers. Root opens a mode-000
    device regardless (CAP_DAC_OVERRIDE), so as root the CLI runs as `nobody` via setpriv
    (util-linux); as any other user, as that user."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "util-linux's setpriv is needed to drop root for this test"
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def test_a_serial_device_this_user_may_not_open_says_which_group_to_join() -> None:
    """A real terminal device (a pty's /dev/pts/N) with mode 000, as a /dev/ttyACM0 is to a
    user outside its group (dialout)."""
    master, slave = pty.openpty()
    try:
        device = os.ttyname(slave)
        os.chmod(device, 0)
        group = grp.getgrgid(os.stat(device).st_gid).gr_name  # tty, as dialout for a USB one
        if os.geteuid() == 0:
            assert os.access(device, os.R_OK | os.W_OK)  # what root sees: no denial at all

        async def go() -> tuple[int, str, str]:
            proc = await asyncio.create_subprocess_exec(
                *as_unprivileged(), sys.executable, "-m", "msa.tools.cli", "wipe", "--port",
                device, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            return int(proc.returncode or 0), out.decode(), err.decode()
        code, _, stderr = run(go)
    finally:
        os.close(slave)
        os.close(master)
    assert code == 1
    assert one_line(stderr) == (
        f"msa: no permission to open {device} (it belongs to group {group}); add your user to"
        f" that group (sudo usermod -aG {group} $USER), log in again, and retry")


# --- the BLE side: the commands in their own processes, on the simulated air through a radio
# server (as `msa sim board --radio` serves it), each host with its own identity and bonds.

def host_variant(config: Path, name: str, state_dir: str, radio_port: int,
                 channels: tuple[str, ...] = ("https", "sms")) -> Path:
    """The chain's host configuration for another host process: its own state (and so its own
    radio identity and bonds), on the radio server, with some of the chain's channels."""
    head, *blocks = config.read_text().split("[[channel]]")
    assert '[host]\nstate_dir = "state"\n' in head
    head = head.replace('[host]\nstate_dir = "state"\n',
                        f'[host]\nstate_dir = "{state_dir}"\n'
                        f'adapter = "sim:127.0.0.1:{radio_port}"\n')
    kept = [b for b in blocks if any(f'type = "{c}"' in b for c in channels)]
    out = config.with_name(name)
    out.write_text("[[channel]]".join([head, *kept]))
    return out


def test_ble_errors_leave_outbox_registry_bonds_and_button_as_a_second_run_needs(
        tmp_path: Path) -> None:
    out: dict[str, tuple[int, str, str]] = {}
    seen: dict[str, Any] = {}

    async def main() -> None:
        chain = Chain(tmp_path)
        server = None
        try:
            await chain.start(with_host=False)
            assert chain.config_path is not None and chain.world is not None
            assert chain.centre is not None
            server = await serve_radio(chain.world.air, "127.0.0.1", 0)
            radio = int(server.sockets[0].getsockname()[1])
            host_a = host_variant(chain.config_path, "a.toml", "state-a", radio, ("https",))
            host_b = host_variant(chain.config_path, "b.toml", "state-b", radio)
            registry = tmp_path / "centre" / "registry.db"
            button_id = chain.world.button_id
            seen["button"] = button_id
            # The centre is down: host A bonds as its link comes up, the TEST alarm is heard
            # and kept, and the only channel fails.
            await chain.centre.stop()
            chain.centre = None
            out["down"] = await msa("test-alarm", "--config", str(host_a))
            outbox = Outbox(tmp_path / "host" / "state-a" / "outbox.db")
            seen["outbox"] = {m.key: outbox.status(m.key)
                              for m in outbox.due(time.time() + 3600, 10)}
            outbox.close()
            # Host B holds no bond: the button, bonded to A, is not to be found by it.
            out["unbonded"] = await msa("test-alarm", "--config", str(host_b), "--timeout", "2")
            seen["b state"] = sorted(p.name for p in (tmp_path / "host" / "state-b").iterdir())
            rows = registry_rows(registry)
            out["unknown"] = await msa("retire", "--config", str(host_a), "--registry",
                                       str(registry), "--button", "99")
            seen["unknown"] = (rows, registry_rows(registry),
                               (tmp_path / "host" / "button.key").exists())
            # Retire with the button on USB, whose config record cannot be erased, and a file
            # given as the registry that is none: the other steps are done, and the key file
            # kept, for the next run to read the configuration; each run finishes more.
            board = chain.world.board
            await board.stop()
            board.faults = Faults(stuck_files=("config.a", "config.b"))
            port = f"socket://127.0.0.1:{await board.start_console()}"
            wrong = tmp_path / "notes.db"
            wrong.write_text("not a registry\n" * 200)
            key_file = tmp_path / "host" / "button.key"
            for run_, reg in (("retire", wrong), ("retire 2", wrong), ("retire 3", registry)):
                out[run_] = await msa("retire", "--config", str(host_a), "--registry",
                                      str(reg), "--port", port)
                seen[run_] = (registry_rows(registry), config_on(board.flash),
                              record(board.flash, "bonds"), key_file.exists())
                board.faults = Faults()
        finally:
            if server is not None:
                server.close()
            await chain.close()
    asyncio.run(asyncio.wait_for(main(), 100))
    button_id = seen["button"]
    assert isinstance(button_id, int)

    code, _, stderr = out["down"]
    assert code == 1
    line = last_line(stderr)
    assert line.startswith("msa: the centre did not acknowledge test alarm ")
    assert ": every channel failed (channel https: " in line and "Cannot connect" in line
    assert "(it stays in the outbox)" in line
    assert "msa host run, which delivers it" in line
    key = line.split("test alarm ", 1)[1].split(":", 1)[0]
    state = seen["outbox"][key]
    assert state is not None and state[0] is None and state[2] >= 1  # kept, undelivered

    code, _, stderr = out["unbonded"]
    assert code == 1
    line = one_line(stderr)
    assert line.startswith("msa: button C0:00:00:00:00:01 not heard within 2 s")
    assert "bonded to another host" in line and "msa provision --force or msa wipe" in line
    assert "outbox.db" not in seen["b state"]

    code, _, stderr = out["unknown"]
    assert code == 1
    assert one_line(stderr) == (f"msa: {tmp_path / 'host' / 'a.toml'} has no button 00000099;"
                                f" choose one of {button_id:08x}")
    before, after, key_kept = seen["unknown"]
    assert before == after and button_id in after and key_kept

    def outcome(run_: str) -> list[tuple[str, str]]:
        return [(s.split()[0], s.split()[1]) for s in out[run_][1].splitlines()]

    code, stdout, stderr = out["retire"]
    assert code == 1
    line = one_line(stderr)
    assert line.startswith("msa: retire incomplete: button: not wiped: records still on the"
                           " device on socket://")
    assert "fix what is named and run msa retire again" in line and "notes.db" in line
    assert outcome("retire") == [("button", "FAILED"), ("host", "done"), ("host", "done"),
                                 ("host", "FAILED"), ("centre", "FAILED")], stdout
    assert "kept until the other steps are done" in stdout
    rows, config_left, _, key_kept = seen["retire"]
    assert button_id in rows and config_left is not None and key_kept

    code, stdout, stderr = out["retire 2"]
    assert code == 1 and "centre: not retired: case registry " in one_line(stderr)
    assert outcome("retire 2") == [("button", "done"), ("host", "done"), ("host", "done"),
                                   ("host", "FAILED"), ("centre", "FAILED")], stdout
    rows, config_left, bonds_left, key_kept = seen["retire 2"]
    assert button_id in rows and config_left is None and bonds_left is None and key_kept

    code, stdout, stderr = out["retire 3"]
    assert code == 0, stderr
    assert [w for w, _ in outcome("retire 3")] == ["button", "host", "host", "host", "centre"]
    assert all(done == "done" for _, done in outcome("retire 3")), stdout
    assert "nothing to wipe on socket://" in stdout and "retired in the registry" in stdout
    rows, config_left, bonds_left, key_kept = seen["retire 3"]
    assert button_id not in rows and config_left is None and not key_kept
