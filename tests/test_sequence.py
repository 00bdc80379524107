"""Replay and duplicate rejection on the host, persisted in SQLite."""
from __future__ import annotations

from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from msa.host.sequence import MAX_GAPS, Outcome, SequenceGuard, decide


@pytest.mark.parametrize("high,gaps,seq,outcome,new_high,new_gaps,gap", [
    (0, [], 17, Outcome.NEW, 17, [], None),  # first frame sets the baseline
    (5, [], 6, Outcome.NEW, 6, [], None),
    (5, [], 9, Outcome.NEW, 9, [(6, 8)], (6, 8)),
    (5, [], 5, Outcome.DUPLICATE, 5, [], None),
    (5, [], 4, Outcome.REPLAY, 5, [], None),
    (9, [(6, 8)], 7, Outcome.LATE, 9, [(6, 6), (8, 8)], None),
    (9, [(6, 8)], 6, Outcome.LATE, 9, [(7, 8)], None),
    (9, [(6, 6)], 6, Outcome.LATE, 9, [], None),
    (9, [(6, 8)], 2, Outcome.REPLAY, 9, [(6, 8)], None),
])
def test_rule_table(high: int, gaps: list[tuple[int, int]], seq: int, outcome: Outcome,
                    new_high: int, new_gaps: list[tuple[int, int]],
                    gap: tuple[int, int] | None) -> None:
    verdict, h, g = decide(high, gaps, seq)
    assert (verdict.outcome, h, g, verdict.gap) == (outcome, new_high, new_gaps, gap)


def test_oldest_gaps_are_given_up_and_reported() -> None:
    high, gaps = 1, []
    lost: list[tuple[int, int]] = []
    for i in range(MAX_GAPS + 3):
        v, high, gaps = decide(high, gaps, high + 2)
        lost += v.lost
    assert len(gaps) == MAX_GAPS and lost == [(2, 2), (4, 4), (6, 6)]
    assert decide(high, gaps, 2)[0].outcome is Outcome.REPLAY


@given(order=st.permutations(list(range(1, 30))), dupes=st.lists(st.integers(1, 29)))
@settings(max_examples=100, deadline=None)
def test_each_number_is_accepted_at_most_once_in_any_order(order: list[int],
                                                          dupes: list[int]) -> None:
    high, gaps = 0, []
    accepted: list[int] = []
    for seq in order + dupes + order:
        v, high, gaps = decide(high, gaps, seq)
        if v.accepted:
            accepted.append(seq)
    assert len(accepted) == len(set(accepted))
    # Everything at or after the first frame (the baseline) arrives exactly once.
    assert set(accepted) == {s for s in order if s >= order[0]}


def test_state_survives_a_restart_and_replays_stay_rejected(tmp_path: Path) -> None:
    db = tmp_path / "host.db"
    guard = SequenceGuard(db)
    assert guard.check(7, 10).outcome is Outcome.NEW
    assert guard.check(7, 13).gap == (11, 12)
    guard.close()
    guard = SequenceGuard(db)
    assert guard.state(7) == (13, [(11, 12)])
    assert guard.check(7, 13).outcome is Outcome.DUPLICATE
    assert guard.check(7, 10).outcome is Outcome.REPLAY
    assert guard.check(7, 12).outcome is Outcome.LATE
    assert guard.check(7, 12).outcome is Outcome.REPLAY
    assert guard.check(8, 1).outcome is Outcome.NEW  # buttons are independent
    guard.forget(7)
    assert guard.state(7) == (0, [])
    guard.close()


def test_unwritable_state_is_a_clear_error(tmp_path: Path) -> None:
    from msa.host.errors import StateError
    with pytest.raises(StateError) as err:
        SequenceGuard(tmp_path / "missing-dir" / "host.db")
    assert "missing-dir" in str(err.value)
