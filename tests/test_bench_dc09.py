"""The DC-09 benchmark section at a tiny scale: presses through the whole chain reach
pysiaalarm, the independent receiver, over the host's DC-09 channel, and the latencies are
sane (no assertion on the 50 ms target)."""
from __future__ import annotations

from pathlib import Path

from msa.bench import dc09
from msa.bench.figures import Options


def test_dc09_section_measures_every_press_to_pysiaalarm(tmp_path: Path) -> None:
    options = Options(root=tmp_path, scale=0.01)
    presses = options.count(options.presses)
    figures = {f.name: f for f in dc09.run(options)}
    assert {f.section for f in figures.values()} == {"dc09"}
    received = figures["alarms received by pysiaalarm"]
    assert received.value == received.target == presses
    median = figures["threshold -> DC-09 ACK, median"].value
    p99 = figures["threshold -> DC-09 ACK, p99"].value
    worst = figures["threshold -> DC-09 ACK, max"].value
    to_host = figures["threshold -> verified event at the host, p99"].value
    channel = figures["host -> DC-09 ACK, p99"].value
    assert None not in (median, p99, worst, to_host, channel)
    assert 0 < median <= p99 <= worst < 5000  # type: ignore[operator]
    assert 0 < to_host < p99 and 0 < channel < p99  # type: ignore[operator]
    assert figures["threshold -> DC-09 ACK, p99"].target == 50.0
    assert "channels used: dc09;" in figures["threshold -> DC-09 ACK, p99"].note
