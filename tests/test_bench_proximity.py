"""The proximity benchmark section at a tiny scale: one scenario through the real path with the
simulated button, and a few hundred pairs through the centre's store and rules; the figures are
there with sane values (no assertion on the targets: `msa bench` reports those)."""
from __future__ import annotations

from pathlib import Path

import pytest

from msa.bench import proximity
from msa.bench.figures import Options


@pytest.mark.timeout(300)
def test_proximity_section_at_a_tiny_scale(tmp_path: Path) -> None:
    figures = {f.name: f for f in proximity.run(Options(root=tmp_path, scale=0.03, runs=1))}
    assert {f.section for f in figures.values()} == {"proximity"}
    latency = figures["crossing of R to the victim's warning, p95"]
    assert latency.value is not None and 0 <= latency.value < 20 and latency.target == 20
    assert "1/1 scenarios as expected" in latency.note
    assert figures["detection over the scenario set"].value == 100.0
    # The first file is an approach, not a drift scenario: no pair-days to count over.
    assert figures["false alerts on the drift scenarios"].value is None
    resampled = figures["false alerts, drift scenarios with new noise"]
    assert resampled.value == 0.0 and "none: the rate is below" in resampled.note
    rate = figures["centre throughput, 300 pairs"]
    assert rate.value is not None and rate.value > 0 and rate.target == 5000
