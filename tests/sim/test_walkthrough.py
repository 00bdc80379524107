"""docs/technician.md's practice section, run as written: every command a technician types, in
its own process (the centre and the virtual board keep running, as in their terminals), a
button's whole life from flash to retire, checked on the board's flash, in the host's state
and at the centre. Only the ports are swapped for free ones."""
from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from msa.centre.core import Centre
from msa.centre.registry import Registry
from msa.wire.message import MessageKind

from test_technician_usb import record

ROOT = Path(__file__).resolve().parent.parent.parent
DOC = ROOT / "docs" / "technician.md"
PORTS = ("7000", "7001", "8443", "8080")
BUTTON_ID = 0x0A0B0C0D
STEP_TIMEOUT_S = 120


def practice_blocks() -> list[tuple[str, str, bool]]:
    """(language, text, keeps running) of each fenced block in the practice section."""
    section = DOC.read_text().split("## Practice: a whole life on the virtual board", 1)[1]
    blocks = []
    for m in re.finditer(r"(?P<before>[^\n]*)\n\n```(?P<lang>\w+)\n(?P<body>.*?)```", section,
                         re.S):
        blocks.append((m["lang"], m["body"], "(keeps running)" in m["before"]))
    return blocks


def free_ports() -> dict[str, str]:
    chosen: dict[str, str] = {}
    for doc_port in PORTS:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            chosen[doc_port] = str(s.getsockname()[1])
    return chosen


def localise(text: str, ports: dict[str, str]) -> str:
    for doc_port, port in ports.items():
        text = text.replace(f"127.0.0.1:{doc_port}", f"127.0.0.1:{port}")
    return text


def argv(line: str) -> list[str]:
    words = shlex.split(line)
    assert words[0] == "msa", line
    return [sys.executable, "-m", "msa.tools.cli", *words[1:]]


class Terminal:
    """A command that keeps running, its output collected in a file."""

    def __init__(self, line: str, cwd: Path, name: str) -> None:
        self.log = cwd / f"{name}.log"
        self.line = line
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(argv(line), cwd=cwd, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def wait_for(self, text: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.log.read_text():
            assert self.proc.poll() is None, f"{self.line} ended:\n{self.log.read_text()}"
            assert time.monotonic() < deadline, f"{self.line}: no {text!r}:\n" \
                                                f"{self.log.read_text()}"
            time.sleep(0.05)

    def interrupt(self) -> int:
        """Ctrl-C, as the technician stops it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    running: list[Terminal] = []
    yield running
    for t in running:
        t.interrupt()


def run(line: str, cwd: Path) -> str:
    proc = subprocess.run(argv(line), cwd=cwd, capture_output=True, text=True,
                          timeout=STEP_TIMEOUT_S)
    assert proc.returncode == 0, f"{line}\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def centre_count(folder: Path, kind: MessageKind) -> int:
    registry = Registry(folder / "centre" / "registry.db")
    centre = Centre(folder / "centre" / "records.db", registry)
    try:
        return centre.count(kind)
    finally:
        centre.close()


def test_a_button_s_whole_life_as_the_technician_guide_says(
        tmp_path: Path, terminals: list[Terminal]) -> None:
    ports = free_ports()
    outputs: dict[str, str] = {}
    blocks = practice_blocks()
    assert [lang for lang, _, _ in blocks] == ["sh", "sh", "sh", "toml", "sh", "sh", "sh"]
    for lang, body, keeps_running in blocks:
        body = localise(body, ports)
        if lang == "toml":
            name = body.split(":", 1)[0].removeprefix("# ").strip()
            (tmp_path / name).write_text(body)
            continue
        for line in body.strip().splitlines():
            command = " ".join(shlex.split(line)[:2])
            if not keeps_running:
                outputs[command] = run(line, tmp_path)
                continue
            t = Terminal(line, tmp_path, f"terminal{len(terminals)}")
            terminals.append(t)
            if command == "msa centre":
                t.wait_for("operator's page")
            elif command == "msa sim":
                t.wait_for("Ctrl-C stops it.")
            else:  # msa host run: in service until the centre hears from the button
                beats = centre_count(tmp_path, MessageKind.HEARTBEAT)
                # The button speaks once a minute: the next heartbeat may come a full period
                # after the count (a 60 s deadline left a second to spare, and missed once).
                deadline = time.monotonic() + 150
                while centre_count(tmp_path, MessageKind.HEARTBEAT) == beats:
                    assert t.proc.poll() is None, t.log.read_text()
                    assert time.monotonic() < deadline, t.log.read_text()
                    time.sleep(0.1)
                assert t.interrupt() == 0
                assert "stopped" in t.log.read_text()
        if "msa provision" in body:
            # The button holds its configuration on flash; the key never appears in output.
            assert record(tmp_path / "button", "config") is not None
            key = (tmp_path / "button.key").read_text().strip()
            assert key not in "".join(outputs.values())

    assert f"button {BUTTON_ID:08x} at C0:00:00:00:00:01: bonded" in outputs["msa bond"]
    assert "key: accepted by the button" in outputs["msa status"]
    assert "acknowledged by the centre as INC-" in outputs["msa test-alarm"]
    assert "HEARTBEAT" in outputs["msa monitor"] or "BOOT" in outputs["msa monitor"]
    assert centre_count(tmp_path, MessageKind.TEST) == 1
    assert centre_count(tmp_path, MessageKind.ALARM) == 0  # a test dispatches no one
    # Retired everywhere: the button's flash, the host's key and bond, the centre's registry.
    assert outputs["msa retire"].count(" done ") == 5, outputs["msa retire"]
    assert record(tmp_path / "button", "config") is None
    assert not (tmp_path / "button.key").exists()
    assert "buttons in service: none" in outputs["msa case"]
    assert "  host " not in outputs["msa case"]  # its credentials revoked
    registry = Registry(tmp_path / "centre" / "registry.db")
    try:
        assert registry.key(BUTTON_ID) is None and BUTTON_ID in registry.retired()
    finally:
        registry.close()
