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


def test_demo_dispatches_one_alarm_to_the_centre_with_case_and_location() -> None:
    proc = msa("sim", "demo", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    a = r["alarm"]
    assert a["kind"] == "ALARM" and a["gesture"] == "HOLD" and a["counted_at_centre"] == 1
    assert a["channel"] == "https" and a["case_ref"] == "DEMO-2026-001"
    assert a["case"]["weapons"] is True and "no contact" in a["case"]["measures"]
    loc = a["location"]
    assert abs(loc["lat"] - 51.0544) < 0.01 and abs(loc["lon"] - 3.7175) < 0.01
    assert 0 < loc["accuracy_m"] < 50
    # The alarm fires at the 2 s threshold, not on release, and reaches the centre at once.
    assert 2000 <= r["press_to_host_ms"] <= r["press_to_centre_ack_ms"] < 2500
    assert r["threshold_to_centre_ack_ms"] < 500
    # The silent call was placed and answered, and the centre knows it (issue 16).
    assert r["call"]["event"] == "answered" and r["call"]["attempt"] == 1


def test_demo_tap_shorter_than_the_threshold_raises_no_alarm() -> None:
    proc = msa("sim", "demo", "--hold-ms", "300", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["alarm"] is None and r["press_to_centre_ack_ms"] is None
    assert "no alarm" in msa("sim", "demo", "--hold-ms", "300").stdout


def test_bad_configuration_is_one_line_naming_the_key(tmp_path: Path) -> None:
    conf = tmp_path / "host.toml"
    conf.write_text('[host]\nstate_dir = "s"\n[[button]]\nid = "0x0"\n')
    proc = msa("host", "check", "--config", str(conf))
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"msa: {conf}: button[0].id: expected a button id")


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
    for cmd in (["sim", "demo"], ["firmware", "size"], ["protocol", "vectors"],
                ["host", "run"], ["host", "check"], ["centre"], ["case", "add"],
                ["case", "show"], ["case", "issue"], ["case", "revoke"], ["case", "tag-add"],
                ["case", "tag-retire"], ["bench"],
                ["sim", "board"], ["sim", "crash"]):
        out = msa(*cmd, "--help").stdout
        assert "Example:" in out, cmd


def test_case_add_then_show_lists_the_case_without_any_key(tmp_path: Path) -> None:
    reg = str(tmp_path / "centre" / "registry.db")
    added = msa("case", "add", "--registry", reg, "--case", "GENT-2026-0147", "--victim",
                "Jane Example", "--victim-phone", "+32470000001", "--measure", "no contact",
                "--weapons")
    assert added.returncode == 0 and "added" in added.stdout, added.stderr
    shown = msa("case", "show", "--registry", reg, "--case", "GENT-2026-0147")
    assert shown.returncode == 0, shown.stderr
    assert "Jane Example" in shown.stdout and "measure: no contact" in shown.stdout
    assert "buttons in service: none" in shown.stdout
    bad = msa("case", "add", "--registry", reg, "--case", "X", "--victim", "Y",
              "--victim-phone", "0470 00 00 01")
    assert bad.returncode != 0 and "international number" in bad.stderr
    missing = msa("case", "show", "--registry", reg, "--case", "NOPE")
    assert missing.returncode == 1 and missing.stderr.startswith("msa: no case 'NOPE'")
    # The view of the case file is in the centre's audit log (the unknown case is no view).
    from msa.centre.audit import AuditLog
    log = AuditLog(tmp_path / "centre" / "audit.db")
    assert [(e.actor.startswith("cli:"), e.action, e.subject, e.source)
            for e in log.entries()] == [(True, "case.view", "GENT-2026-0147", "cli")]
    assert log.verify().ok
    log.close()


def test_a_retired_button_id_is_never_provisioned_again(tmp_path: Path) -> None:
    from msa.centre.registry import Case, Registry

    reg = tmp_path / "registry.db"
    registry = Registry(reg)
    registry.put_case(Case("C-1", "V"))
    registry.register(0x0A0B0C0D, bytes(32), "C-1")
    registry.retire(0x0A0B0C0D)
    registry.close()
    # Refused before any device is touched: nothing listens on this port.
    proc = msa("provision", "--port", "socket://127.0.0.1:9", "--case", "C-1", "--registry",
               str(reg), "--button-id", "0a0b0c0d", "--force")
    assert proc.returncode == 1
    assert proc.stderr.startswith("msa: button id 0a0b0c0d was retired"), proc.stderr


def test_a_demo_on_a_deployments_configuration_needs_the_buttons_centre_key(
        tmp_path: Path) -> None:
    conf = tmp_path / "host.toml"
    conf.write_text("[host]\n")
    proc = msa("sim", "demo", "--config", str(conf))
    assert proc.returncode == 1
    assert proc.stderr.startswith("msa: --config and --centre-key-file go together"), proc.stderr
    loose = tmp_path / "centre.key"
    loose.write_text("ab" * 32)
    loose.chmod(0o644)
    proc = msa("sim", "demo", "--config", str(conf), "--centre-key-file", str(loose))
    assert proc.returncode == 1 and "chmod 600" in proc.stderr, proc.stderr
