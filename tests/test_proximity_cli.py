"""`msa sim proximity` as a user runs it: a folder of scenarios replayed (here without the
button, which tests/sim/test_proximity_replay.py covers), a row per scenario with what it
expected and what it got, the figures, and a non-zero exit when one did not go as expected."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from msa.simulator.scenario import shipped

from test_cli import msa


def test_a_folder_replays_and_a_wrong_expectation_fails(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    shutil.copy(shipped() / "01_approach_on_foot.toml", folder)
    wrong = (shipped() / "08_pass_on_foot_75m_outside.toml").read_text()
    # The same pass, but a file that (wrongly) expects an alert: the replay must say so.
    assert "alerts = { A = 0 }" in wrong
    (folder / "99_wrong.toml").write_text(wrong.replace("alerts = { A = 0 }",
                                                        "alerts = { A = 1 }"))
    result = msa("sim", "proximity", "--scenarios", str(folder), "--no-button")
    assert result.returncode == 1
    assert "ok   01_approach_on_foot" in result.stdout
    assert "FAIL 99_wrong" in result.stdout and "A: 0 alerts, 1 expected" in result.stdout
    assert "1 scenario(s) did not go as expected: 99_wrong" in result.stderr


def test_json_output_and_a_bad_folder(tmp_path: Path) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(shipped() / "01_approach_on_foot.toml", folder)
    result = msa("sim", "proximity", "--scenarios", str(folder), "--no-button", "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["figures"]["scenarios_passed"] == 1
    assert data["scenarios"][0]["expected"] == "A: 1 alert; 1 pre-alert"
    (folder / "broken.toml").write_text("title = 'x'\n")
    bad = msa("sim", "proximity", "--scenarios", str(folder), "--no-button")
    assert bad.returncode == 1 and bad.stderr.startswith("msa: ") and "broken.toml" in bad.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    none = msa("sim", "proximity", "--scenarios", str(empty), "--no-button")
    assert none.returncode == 1 and "no scenario files" in none.stderr


def test_the_case_file_gets_radii_zones_and_links(tmp_path: Path) -> None:
    reg = str(tmp_path / "registry.db")
    for ref in ("GENT-1", "GENT-2"):
        assert msa("case", "add", "--registry", reg, "--case", ref, "--victim", "V",
                   "--suspect", "S").returncode == 0
    tag = msa("case", "tag-add", "--registry", reg, "--case", "GENT-1", "--interval-s", "10")
    tag_id = tag.stdout.split()[1]
    assert tag_id.startswith("TAG-")
    ok = msa("case", "proximity", "--registry", reg, "--case", "GENT-1", "--radius-m", "300")
    assert ok.returncode == 0 and "alert within 300 m, pre-alert within 600 m" in ok.stdout
    assert msa("case", "zone-add", "--registry", reg, "--case", "GENT-1", "--name", "home",
               "--circle", "51.05,3.72,30").returncode == 0
    assert msa("case", "zone-add", "--registry", reg, "--case", "GENT-1", "--name", "school",
               "--polygon", "51.06,3.72;51.06,3.73;51.07,3.73").returncode == 0
    assert msa("case", "tag-link", "--registry", reg, "--tag", tag_id, "--case",
               "GENT-2").returncode == 0
    shown = msa("case", "show", "--registry", reg, "--case", "GENT-1").stdout
    assert "alert within 300 m" in shown and "zone home:" in shown and "zone school:" in shown
    from msa.centre.proxstore import ProximityStore
    from msa.centre.registry import Registry
    registry = Registry(reg)
    store = ProximityStore(registry)
    try:
        rules = store.rules("GENT-1")
        assert rules.alert_radius_m == 300 and set(rules.zones) == {"home", "school"}
        assert store.cases_of(tag_id, "GENT-1") == ["GENT-1", "GENT-2"]
        assert store.tags_of("GENT-2") == [tag_id]
    finally:
        store.close()
        registry.close()
    assert msa("case", "zone-remove", "--registry", reg, "--case", "GENT-1", "--name",
               "school").returncode == 0


@pytest.mark.parametrize("args, says", [
    (["zone-add", "--name", "home", "--circle", "51.05,3.72"], "3 numbers"),
    (["zone-add", "--name", "home", "--circle", "91,3.72,30"], "latitude"),
    (["zone-add", "--name", "home", "--polygon", "51,3;51,4"], "3 to 64 corners"),
    (["zone-add", "--name", "home"], "one of --circle and --polygon"),
    (["zone-add", "--name", "victim", "--circle", "51,3,0"], "not 'victim'"),
    (["zone-add", "--name", "a b", "--circle", "51,3,0"], "zone name"),
    (["zone-add", "--name", "x", "--circle", "51,3,nan"], "3 numbers"),
    (["proximity", "--radius-m", "10"], "50"),
    (["proximity", "--radius-m", "500", "--prealert-m", "400"], "pre-alert radius above it"),
    (["zone-remove", "--name", "nowhere"], "has no zone"),
    (["tag-link", "--tag", "TAG-00000000"], "no tag"),
])
def test_bad_zone_input_is_refused_clearly(tmp_path: Path, args: list[str], says: str) -> None:
    reg = str(tmp_path / "registry.db")
    assert msa("case", "add", "--registry", reg, "--case", "G", "--victim", "V").returncode == 0
    result = msa("case", *args[:1], "--registry", reg, "--case", "G", *args[1:])
    assert result.returncode != 0 and says in result.stderr, result.stderr
