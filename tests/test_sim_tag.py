"""`msa sim tag` (issue 14, part 6) against a real started centre: a scenario's tag and a
straight line, streamed over the OsmAnd protocol (POST and GET) through the centre's TLS with a
tag issued by centre/tags.py, and what the centre stored compared with what was simulated;
every failure ends in one `msa: ...` line and nothing stored."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from msa.simulator import scenario
from msa.simulator.scenario_truth import distance_m

from test_cli import msa
from test_tags import Centre

TAMPERED = scenario.shipped() / "33_tag_tampered.toml"


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    c = Centre(tmp_path_factory.mktemp("simtag") / "centre")
    yield c
    c.close()


def secret_file(tmp_path: Path, secret: str, mode: int = 0o600) -> Path:
    path = tmp_path / "tag.secret"
    path.write_text(secret + "\n")
    os.chmod(path, mode)
    return path


def new_tag(centre: Centre) -> tuple[str, str]:
    issued = centre.do(lambda: centre.running.tags.issue("C-T", 10))
    return issued.tag.tag_id, issued.secret


def run(centre: Centre, secret: Path, *args: str) -> tuple[int, str, str]:
    proc = msa("sim", "tag", "--url", f"https://127.0.0.1:{centre.running.api_port}",
               "--secret-file", str(secret), "--ca-file", str(centre.running.tls.ca_cert),
               *args)
    return proc.returncode, proc.stdout, proc.stderr


def test_a_scenario_tag_is_stored_as_simulated(centre: Centre, tmp_path: Path) -> None:
    tag_id, secret = new_tag(centre)
    code, out, err = run(centre, secret_file(tmp_path, secret), "--scenario", str(TAMPERED),
                         "--tag", "T", "--speedup", "1000", "--count", "130")
    assert code == 0, err
    assert "sent 130 reports" in out and err.count("\n") == 130  # one progress line each
    expected = scenario.load(TAMPERED).tag_samples("T")[:130]
    stored = centre.stored(tag_id)
    assert len(stored) == 130
    for row, sample in zip(stored, expected):
        assert (row["lat"], row["lon"], row["accuracy_m"], row["battery_pct"], row["tamper"]) \
            == (sample.lat, sample.lon, sample.accuracy_m, sample.battery_pct, sample.tamper)
    assert [bool(r["tamper"]) for r in stored] == [s.t_s >= 1200 for s in expected]
    # Scenario time maps onto wall time at the speedup: 10 s fixes come 10 ms apart.
    gaps = [float(str(b["fix_time"])) - float(str(a["fix_time"]))
            for a, b in zip(stored, stored[1:])]
    assert all(abs(g - 0.010) <= 0.0011 for g in gaps), gaps[:5]
    assert all(float(str(r["received_at"])) >= float(str(r["fix_time"])) - 0.002
               for r in stored)


def test_a_straight_line_by_get_reaches_its_destination(centre: Centre, tmp_path: Path) -> None:
    tag_id, secret = new_tag(centre)
    start, end = (51.0600, 3.7100), (51.0543, 3.7174)
    code, out, err = run(centre, secret_file(tmp_path, secret), "--from", "51.06,3.71",
                         "--to", "51.0543,3.7174", "--speed-kmh", "50", "--interval-s", "5",
                         "--speedup", "500", "--method", "GET", "--quiet")
    assert code == 0, err
    assert err == ""  # --quiet: no progress lines
    stored = centre.stored(tag_id)
    length = distance_m(start, end)  # about 820 m: 59 s at 50 km/h, 5 s fixes
    assert len(stored) == int(length / (50 / 3.6) / 5) + 2
    along = [distance_m(start, (float(str(r["lat"])), float(str(r["lon"])))) for r in stored]
    assert along[0] < 30 and abs(along[-1] - length) < 30
    assert all(b > a - 20 for a, b in zip(along, along[1:]))  # onwards, within the noise
    assert f"sent {len(stored)} reports" in out


def test_an_unknown_secret_is_refused_and_nothing_stored(centre: Centre,
                                                         tmp_path: Path) -> None:
    before = centre.stored()
    code, _, err = run(centre, secret_file(tmp_path, "x" * 43), "--scenario", str(TAMPERED),
                       "--tag", "T", "--speedup", "1000", "--count", "3")
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("msa: ") and "401" in err
    assert "0 reports sent before" in err
    assert centre.stored() == before


@pytest.mark.parametrize("args,needle", [
    (["--tag", "T"], "--from, --to"),
    (["--scenario", str(TAMPERED)], "--tag NAME"),
    (["--scenario", str(TAMPERED), "--tag", "T", "--from", "1,2"], "not both"),
    (["--scenario", str(TAMPERED), "--tag", "nobody"], "no tag named 'nobody'"),
    (["--from", "91,3", "--to", "51,3", "--speed-kmh", "5"], "LAT,LON"),
    (["--from", "51,3", "--to", "north", "--speed-kmh", "5"], "LAT,LON"),
])
def test_bad_usage_is_one_clear_line(centre: Centre, tmp_path: Path, args: list[str],
                                     needle: str) -> None:
    code, _, err = run(centre, secret_file(tmp_path, centre.secret), *args)
    assert code != 0 and needle in err and "Traceback" not in err


def test_url_secret_file_and_reachability_errors(centre: Centre, tmp_path: Path) -> None:
    line = ["--from", "51.06,3.71", "--to", "51.0543,3.7174", "--speed-kmh", "50",
            "--count", "1"]
    good = secret_file(tmp_path, centre.secret)
    proc = msa("sim", "tag", "--url", f"http://127.0.0.1:{centre.running.api_port}",
               "--secret-file", str(good), *line)
    assert proc.returncode == 1 and "msa: " in proc.stderr and "https://" in proc.stderr
    loose = tmp_path / "loose"
    loose.mkdir()
    code, _, err = run(centre, secret_file(loose, centre.secret, 0o644), *line)
    assert code == 1 and "chmod 600" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    code, _, err = run(centre, secret_file(bad, "not a secret"), *line)
    assert code == 1 and "does not hold a tag secret" in err
    proc = msa("sim", "tag", "--url", "https://127.0.0.1:9", "--secret-file", str(good),
               *line)
    assert proc.returncode == 1 and "msa: cannot reach https://127.0.0.1:9" in proc.stderr
    proc = msa("sim", "tag", "--url", f"https://127.0.0.1:{centre.running.api_port}",
               "--secret-file", str(good), *line)  # the system's CAs: not the private CA
    assert proc.returncode == 1 and "check --ca-file" in proc.stderr
