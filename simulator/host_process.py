"""`msa host run` as an OS process of its own, for the crash run (crash.py): its configuration
(the board's radio as its adapter, the centre over HTTPS) and its life (start, SIGKILL, Ctrl-C)."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from msa.centre.server import RunningCentre
from msa.common.files import write_private
from msa.host import crashpoint


class HostProcess:
    """`msa host run --config ...` in its own process and session, its output in a file."""

    def __init__(self, config: Path, log: Path, crash_at: str | None) -> None:
        self.config = config
        self.log = log
        self.crash_at = crash_at
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != crashpoint.ENV}
        env["PYTHONUNBUFFERED"] = "1"
        if self.crash_at is not None:
            env[crashpoint.ENV] = self.crash_at
        with self.log.open("ab") as out:
            out.write(f"--- host started, {crashpoint.ENV}={self.crash_at}\n".encode())
            out.flush()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "msa.tools.cli", "host", "run", "--config",
                str(self.config), stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> int:
        """SIGKILL, to this process alone (by its id), then its status."""
        assert self.proc is not None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
        return await self.proc.wait()

    async def interrupt(self, timeout_s: float = 30.0) -> int:
        """Ctrl-C, as an operator stops it; SIGKILL if it does not stop in time."""
        assert self.proc is not None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGINT)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout_s)
        except asyncio.TimeoutError:
            return await self.kill()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _secret(path: Path, text: str) -> str:
    return write_private(path, text + "\n").name


def write_config(folder: Path, centre: RunningCentre, token: str, radio_port: int,
                 button_id: int, key: bytes, address: str) -> Path:
    """The host's configuration: the board's radio as its adapter, the centre over HTTPS
    with the host's own token."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "host.toml"
    path.write_text(
        f'[host]\nstate_dir = "state"\nadapter = "sim:127.0.0.1:{radio_port}"\n\n'
        f'[[button]]\nid = "{button_id:#010x}"\naddress = "{address}"\n'
        f'key_file = "{_secret(folder / "button.key", key.hex())}"\n\n'
        '[location]\nsource = "fixed"\nlat = 51.0543\nlon = 3.7174\naccuracy_m = 30\n\n'
        f'[[channel]]\ntype = "https"\nurl = "{centre.api_url}"\n'
        f'token_file = "{_secret(folder / "api.token", token)}"\n'
        f'ca_file = "{centre.tls.ca_cert}"\ndeadline_s = 2.0\n')
    return path
