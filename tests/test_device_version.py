"""msa flash's version check: each board module's `# needs:` line, and the refusal of an older
MicroPython with an error naming the release needed."""
from __future__ import annotations

from pathlib import Path

import pytest

from msa.tools import device
from msa.tools import firmware as fw
from msa.tools.errors import DeviceFailed, MicroPythonTooOld


def test_every_board_declares_what_it_needs() -> None:
    needs = {board: device.board_needs(board) for board in fw.boards()}
    assert needs["xiao_esp32c3"].version == (1, 27, 0)
    assert "wake_on_gpio" in needs["xiao_esp32c3"].reason
    assert all(n.version >= (1, 24, 0) and n.reason for n in needs.values())


@pytest.mark.parametrize("board, release, refused", [
    ("xiao_esp32c3", "1.26.0", True),
    ("xiao_esp32c3", "1.26.99", True),
    ("xiao_esp32c3", "1.27.0", False),
    ("xiao_esp32c3", "1.28.0", False),
    ("esp32_devkitc", "1.24.1", False),
    ("esp32_devkitc", "1.23.0", True),
    ("pico_w", "1.24.0", False),
    ("sim", "1.29.0", False),
])
def test_an_older_release_is_refused_naming_the_one_needed(tmp_path: Path, board: str,
                                                           release: str, refused: bool) -> None:
    image = device.Image(board, (), 6, device.board_needs(board))
    if not refused:
        device.check_release("socket://x", image, release)
        return
    with pytest.raises(MicroPythonTooOld) as caught:
        device.check_release("socket://x", image, release)
    assert caught.value.needed == image.needs.text and caught.value.found == release
    assert f"needs MicroPython {image.needs.text} or later" in str(caught.value)


@pytest.mark.parametrize("release", ["", "v1", "1.x.0"])
def test_an_unreadable_release_is_an_error(release: str) -> None:
    image = device.Image("sim", (), 6, device.board_needs("sim"))
    with pytest.raises(DeviceFailed):
        device.check_release("socket://x", image, release)
