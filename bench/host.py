"""Host footprint: resident memory and idle CPU of `msa host run` keeping one button, measured
on the real command in its own process. The button is a virtual board whose radio the host
joins over the simulator's radio server (`adapter = "sim:..."`), the centre the reference one
over HTTPS. Idle means connected, no press: the button's heartbeat each minute is all traffic.

With the simulated radio the host process also runs Bumble's Bluetooth host stack, which a
deployed host leaves to the operating system (BlueZ's bluetoothd): the figures are an upper
bound for the host's own share.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from msa.centre.registry import Case
from msa.centre.server import CentreConfig, start_centre
from msa.common.files import write_private
from msa.wire.message import MessageKind
from msa.simulator.radio import serve_radio
from msa.simulator.world import BUTTON_ADDRESS, World

from .figures import Figure, Options

SECTION = "host"
IDLE_S = 30.0
TARGET_IDLE_CPU_PCT = 1.0  # ours: a host may be a phone or a battery-backed gateway
TARGET_RSS_MIB = 150.0  # ours: well inside the smallest Raspberry Pi or a phone's budget
_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICK = os.sysconf("SC_CLK_TCK")
# What the same interpreter holds once it has imported what `msa host run` imports.
_BASELINE = ("import msa.tools.cli, msa.host.service, msa.tools.adapter, bleak, aiohttp;"
             "import msa.simulator.radio, msa.simulator.bleak_backend;"
             "print(open('/proc/self/statm').read().split()[1])")


def _secret(path: Path, text: str) -> None:
    write_private(path, text + "\n")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident set, MiB."""
    status = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    kib = [int(status[k].split()[0]) for k in ("VmRSS", "VmHWM")]
    return kib[0] / 1024, kib[1] / 1024


async def _wait_for(what: str, check: Callable[[], bool], proc: asyncio.subprocess.Process,
                    timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if proc.returncode is not None:
            raise RuntimeError(f"msa host run ended ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"msa host run: no {what} within {timeout_s:.0f} s")
        await asyncio.sleep(0.1)


async def measure(root: Path, idle_s: float) -> dict[str, float]:
    key = secrets.token_bytes(32)
    button_id = secrets.randbelow(0xFFFFFFFE) + 1
    centre = await start_centre(CentreConfig(state_dir=root / "centre", dc09_port=None))
    centre_key = secrets.token_bytes(32)
    world = World(root / "board", key=key, button_id=button_id, centre_key=centre_key)
    proc: asyncio.subprocess.Process | None = None
    radio = None
    try:
        centre.centre.registry.put_case(Case("BENCH-0001", "(bench)"))
        centre.centre.registry.register(button_id, centre_key, "BENCH-0001")
        token = centre.issue_host("BENCH-0001").token
        await world.start(with_host=False)
        radio = await serve_radio(world.air, "127.0.0.1", 0)
        port = radio.sockets[0].getsockname()[1]
        conf = root / "host"
        conf.mkdir(parents=True, exist_ok=True)
        _secret(conf / "button.key", key.hex())
        _secret(conf / "api.token", token)
        (conf / "host.toml").write_text(
            f'[host]\nstate_dir = "state"\nadapter = "sim:127.0.0.1:{port}"\n\n'
            f'[[button]]\nid = "{button_id:#010x}"\naddress = "{BUTTON_ADDRESS}"\n'
            f'key_file = "button.key"\n\n'
            f'[location]\nsource = "fixed"\nlat = 51.05\nlon = 3.72\n\n'
            f'[[channel]]\ntype = "https"\nurl = "{centre.api_url}"\n'
            f'token_file = "api.token"\nca_file = "{centre.tls.ca_cert}"\n')
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "msa.tools.cli", "host", "run", "--config",
            str(conf / "host.toml"), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        # In service once the centre has the button's boot message through this host.
        await _wait_for("delivery of the button's boot message",
                        lambda: centre.centre.count(MessageKind.BOOT) > 0, proc, 60)
        await asyncio.sleep(2.0)  # connection set-up and first deliveries settle
        cpu0, wall0 = _cpu_s(proc.pid), time.monotonic()
        await asyncio.sleep(idle_s)
        cpu1, wall1 = _cpu_s(proc.pid), time.monotonic()
        rss, peak = _rss_mib(proc.pid)
        return {"rss_mib": rss, "peak_mib": peak,
                "idle_cpu_pct": 100 * (cpu1 - cpu0) / (wall1 - wall0), "idle_s": wall1 - wall0}
    finally:
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if radio is not None:
            radio.close()
        await world.close()
        await centre.stop()


def _baseline_mib() -> float:
    out = subprocess.run([sys.executable, "-c", _BASELINE], capture_output=True, text=True,
                         check=True).stdout
    return int(out.strip()) * _PAGE / 2 ** 20


def run(options: Options) -> list[Figure]:
    root = options.root / "host"
    root.mkdir(parents=True, exist_ok=True)
    idle_s = max(3.0, IDLE_S * options.scale)
    m = asyncio.run(measure(root, idle_s))
    base = _baseline_mib()
    floor = f"the interpreter with the same imports and nothing running: {base:.0f} MiB"
    return [
        Figure(SECTION, "msa host run, resident memory, one button connected", m["rss_mib"],
               "MiB", target=TARGET_RSS_MIB, floor=floor,
               note="includes Bumble's host stack (the simulated adapter)"),
        Figure(SECTION, "msa host run, peak resident memory", m["peak_mib"], "MiB"),
        Figure(SECTION, f"msa host run, idle CPU over {m['idle_s']:.0f} s", m["idle_cpu_pct"],
               "%", target=TARGET_IDLE_CPU_PCT,
               floor="0: nothing to do between heartbeats"),
    ]
