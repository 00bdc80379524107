"""The WARN command from the host's side: its patterns are the document's, the host refuses to
send one without a link, and the button's player keeps every step at least as long as the
table says however late its loop runs (Hypothesis, on the firmware module under CPython)."""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

import frame as fw_frame
import haptic
import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from sim import SimBoard

from msa.host.errors import LinkError
from msa.host.link import ButtonLink, ButtonTarget
from msa.host.receiver import Receiver
from msa.host.sequence import SequenceGuard
from msa.wire import protocol as hp

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def _doc_patterns() -> dict[str, tuple[int, tuple[int, ...]]]:
    text = DOC.read_text()
    block = text[text.index("<!-- haptic-patterns:begin -->"):
                 text.index("<!-- haptic-patterns:end -->")]
    return {m[1]: (int(m[2]), tuple(int(ms) for ms in m[3].split(",")))
            for m in re.finditer(r"^\| (\w+) \| (\d+) \| ([\d, ]+) \|", block, re.M)}


def test_the_host_patterns_are_the_documents_and_the_firmwares() -> None:
    doc = _doc_patterns()
    assert {p.name: int(p) for p in hp.Pattern} == {name: v for name, (v, _) in doc.items()}
    for p in hp.Pattern:
        assert getattr(fw_frame, f"PATTERN_{p.name}") == int(p)
        assert haptic.PATTERNS[p] == doc[p.name][1]
    assert hp.Op.WARN == fw_frame.OP_WARN == 4 and hp.Op.WARN in hp.NONCE_OPS


def test_a_warn_needs_the_buttons_challenge() -> None:
    keys = hp.ButtonKeys.from_master(bytes(32))
    with pytest.raises(ValueError):
        hp.encode_command(keys, 1, hp.Op.WARN, 0, hp.Pattern.PROXIMITY)


def test_warn_without_a_link_raises_link_error(tmp_path: Path) -> None:
    keys = hp.ButtonKeys.from_master(bytes(range(32)))

    async def sink(_event: object) -> None:
        raise AssertionError("no event expected")

    link = ButtonLink(ButtonTarget(7, "C0:00:00:00:00:01", keys),
                      Receiver({7: keys}, SequenceGuard(tmp_path / "seq.db")), sink)
    with pytest.raises(LinkError) as err:
        asyncio.run(link.warn(hp.Pattern.PROXIMITY))
    assert err.value.button_id == 7 and "not connected" in err.value.detail
    with pytest.raises(ValueError):
        asyncio.run(link.warn(9))  # type: ignore[arg-type]  # not a pattern


class _Pin:
    def __init__(self, board: SimBoard) -> None:
        self.board = board
        self.transitions: list[tuple[int, int]] = []

    def value(self, level: int) -> None:
        self.transitions.append((self.board.now_ms, level))


class _Board(SimBoard):  # type: ignore[misc]  # the firmware's board module is untyped
    def __init__(self, start_ms: int) -> None:
        super().__init__(start_ms=start_ms)
        self.pin = _Pin(self)

    def Vibration(self) -> _Pin:
        return self.pin


@given(pattern=st.sampled_from(list(hp.Pattern)),
       start_ms=st.integers(0, (1 << 30) - 1),  # across the ticks' wrap too
       woken_ms=st.lists(st.integers(1, 2000), min_size=1, max_size=30),
       late_ms=st.lists(st.integers(0, 120), min_size=1, max_size=30))
@settings(max_examples=300, deadline=None)
def test_every_step_lasts_at_least_its_duration_however_the_loop_runs(
        pattern: hp.Pattern, start_ms: int, woken_ms: list[int], late_ms: list[int]) -> None:
    """The radio loop passes when anything wakes it (IRQs, other deadlines: often before the
    motor's next step), and wakes for the motor's own deadline late by up to 120 ms."""
    board = _Board(start_ms)
    player = haptic.Haptic(board)
    player.play(int(pattern), board.ticks_ms())
    wait = player.turn(board.ticks_ms())
    passes = 0
    while wait >= 0:
        board.now_ms += min(wait, woken_ms[passes % len(woken_ms)]) + \
            late_ms[passes % len(late_ms)]
        passes += 1
        wait = player.turn(board.ticks_ms())
    steps = haptic.PATTERNS[pattern]
    got = board.pin.transitions
    assert [level for _, level in got] == [1 - (i & 1) for i in range(len(steps))] + [0]
    took = [b[0] - a[0] for a, b in zip(got, got[1:])]
    assert all(nominal <= ms <= nominal + 120 for nominal, ms in zip(steps, took)), (steps, took)
    assert not player.playing
