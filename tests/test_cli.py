"""The msa command line, run as a user runs it (a subprocess), including its error boundary."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def msa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "msa.tools.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_demo_presses_and_the_host_verifies_one_alarm() -> None:
    proc = msa("sim", "demo", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["alarm"]["kind"] == "ALARM" and r["alarm"]["gesture"] == "HOLD"
    assert r["alarm"]["verdict"] == "new" and r["alarm"]["seq"] > r["boot"]["seq"]
    assert r["threshold_after_press_ms"] == 2000
    assert r["replay_verdict"] == "duplicate" and r["forged_rejection"] == "tag"


def test_demo_tap_shorter_than_the_threshold_raises_no_alarm() -> None:
    proc = msa("sim", "demo", "--hold-ms", "300", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["alarm"] is None and r["threshold_after_press_ms"] is None
    assert "no alarm" in msa("sim", "demo", "--hold-ms", "300").stdout


def test_firmware_size_lists_modules_and_total() -> None:
    proc = msa("firmware", "size", "--board", "sim", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["total"] == sum(r["modules"].values()) and "frame.mpy" in r["modules"]


def test_unknown_board_is_one_line_saying_what_to_do() -> None:
    proc = msa("firmware", "size", "--board", "nope")
    assert proc.returncode == 1
    assert proc.stderr.startswith("msa: unknown board 'nope'; choose one of")


def test_protocol_vectors_match_the_document() -> None:
    proc = msa("protocol", "vectors")
    assert proc.returncode == 0
    assert proc.stdout.strip() in (ROOT / "docs" / "protocol.md").read_text()


def test_help_has_examples() -> None:
    for cmd in (["sim", "demo"], ["firmware", "size"], ["protocol", "vectors"]):
        out = msa(*cmd, "--help").stdout
        assert "Example:" in out, cmd
