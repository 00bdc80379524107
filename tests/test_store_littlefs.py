"""The store on a real LittleFS (MicroPython's VfsLfs2) survives a power cut at every byte
programmed to flash: after remounting, a record is always its old or its new value."""
from __future__ import annotations

import pytest

from mpy import Worker


@pytest.mark.micropython
@pytest.mark.parametrize("saves", [["aa", "bbbb", "cc"], ["00" * 40, "", "ff" * 300]],
                         ids=["small", "empty-and-large"])
def test_power_cut_at_every_byte_on_littlefs(mp: Worker, saves: list[str]) -> None:
    total = mp.call("lfscut", "run", -1, saves)
    assert total["loaded"] == saves[-1]
    outcomes = set()
    for budget in range(total["steps"] + 1):
        r = mp.call("lfscut", "run", budget, saves)
        done = r["completed"]
        allowed = ({saves[done - 1]} if done else {None}) | (
            {saves[done]} if done < len(saves) else set())
        assert r["loaded"] in allowed, (budget, r)
        outcomes.add(r["loaded"])
    assert outcomes == {None, *saves}  # every stage was really reached by some cut
