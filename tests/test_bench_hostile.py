"""The hostile benchmark section at a tiny scale: every receiver gets inputs, none is wrongly
accepted or logs a traceback, every one still serves, and an alarm is acknowledged while idle
and slow-header clients hold connections (no assertion on the 1 s target)."""
from __future__ import annotations

from pathlib import Path

from msa.bench import hostile
from msa.bench.figures import Options


def test_hostile_section_reports_every_receiver_and_the_held_alarm(tmp_path: Path) -> None:
    options = Options(root=tmp_path, scale=0.02)
    figures = {f.name: f for f in hostile.run(options)}
    assert {f.section for f in figures.values()} == {"hostile"}
    for receiver, full in hostile.INPUTS.items():
        assert figures[f"{receiver}: inputs tried"].value == options.count(full)
        for what in ("wrongly accepted", "tracebacks", "still serves (1 = yes)"):
            assert figures[f"{receiver}: {what}"].met, (receiver, what)
    worst = figures["press -> centre ACK under held connections, max"]
    assert worst.value is not None and 0 < worst.value < 10_000
    assert "idle connections and 1 slow-header clients held" in \
        figures["press -> centre ACK under held connections, median"].note
    assert figures["tracebacks while held"].met
    assert figures["open-file limit of the centre"].value >= 1024  # type: ignore[operator]
