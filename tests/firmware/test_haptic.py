"""The WARN command end to end on the button, on a stand-in radio and the sim board's virtual
clock: a tagged WARN plays exactly its pattern on the motor pin, anything else plays nothing,
the patterns are the document's and no two feel alike (both interpreters)."""
import struct

import bluetooth  # the stand-in; also gives CPython's asyncio the flag the firmware uses
import button
import config
import frame
import haptic
import micropython
import peripheral
import power
import store
from cutfs import CutFs
from frame import OP_WARN, Hmac, derive
from sim import SimBoard

KEY = bytes(range(32))
BUTTON_ID = 0x12345678
_CONNECT = 1
_MTU = 21
_NAMES = ("PROXIMITY", "LOW_BATTERY", "LINK_LOST", "TEST")
_BEGIN = "<!-- haptic-patterns:begin -->"
_END = "<!-- haptic-patterns:end -->"


class _NoMotorBoard(SimBoard):
    VIBRATION_PIN = None  # as every real board today


def _make(board=None, **extra):
    board = board if board is not None else SimBoard(start_ms=1000)
    raw = {"button_id": BUTTON_ID, "key": KEY.hex(), "centre_key": bytes(range(64, 96)).hex()}
    raw.update(extra)
    cfg = config.validate(raw)
    b = button.Button(board, store.Store("/flash", CutFs()), cfg, None, boot=False)
    ble = bluetooth.BLE()
    per = peripheral.Peripheral(ble, board, b, cfg)
    per.start()
    ble.event(_CONNECT, (1, 0, b"\xc0\x00\x00\x00\x00\x10"))
    ble.event(_MTU, (1, 64))
    per.turn(board.ticks_ms())  # the loop renews the challenge for the new link
    return per, ble, board


def _warn(pattern, nonce, key=KEY):
    body = struct.pack(">BBII", frame.VERSION, OP_WARN, 0, pattern)
    tag = Hmac(derive(key, b"msa1 cmd")).digest(struct.pack(">I", BUTTON_ID) + body + nonce)
    return body + tag[:8]


def _write(per, ble, board, cmd):
    """The host writes `cmd`; the loop takes it at once (its IRQ woke it)."""
    ble.central_write(1, per.h.control, cmd)
    per.turn(board.ticks_ms())


def _run(per, board, until_ms):
    """The radio loop on the virtual clock, each pass at the deadline it asked for."""
    while True:
        wait = per.turn(board.ticks_ms())
        if board.now_ms + wait > until_ms:
            board.run_until(until_ms)
            return
        board.advance(wait)


def _expected(steps, t0):
    """The transitions a pattern's steps make from t0: on, off, ..., and off at the end."""
    out = []
    t = t0
    for i in range(len(steps)):
        out.append((t, 1 - (i & 1)))
        t += steps[i]
    out.append((t, 0))
    return out


def _documented():
    """{name: (value, steps)} from the haptic-patterns table of docs/protocol.md."""
    here = __file__.replace("\\", "/").rsplit("/", 1)[0]
    with open(here + "/../../docs/protocol.md") as f:
        text = f.read()
    block = text[text.find(_BEGIN) + len(_BEGIN):text.find(_END)]
    rows = {}
    for line in block.split("\n"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].isdigit():
            rows[cells[0]] = (int(cells[1]),
                              tuple(int(ms.strip()) for ms in cells[2].split(",")))
    return rows


def _informed(ble, per):
    return [n for n in ble.notified if n[1] == per.h.info]


def test_the_patterns_are_the_documents():
    doc = _documented()
    assert sorted(doc) == sorted(_NAMES)
    for name in _NAMES:
        value, steps = doc[name]
        assert getattr(frame, "PATTERN_" + name) == value, name
        assert haptic.PATTERNS[value] == steps, name
    assert len(haptic.PATTERNS) == len(_NAMES) + 1 and haptic.PATTERNS[0] == ()


def test_a_tagged_warn_plays_exactly_its_pattern_and_admits_the_host():
    for pattern in range(1, len(haptic.PATTERNS)):
        per, ble, board = _make()
        nonce = ble.values[per.h.control]
        _write(per, ble, board, _warn(pattern, nonce))
        t0 = board.now_ms
        _run(per, board, t0 + 10000)
        assert board.motor.transitions == _expected(haptic.PATTERNS[pattern], t0), pattern
        assert per.commands_accepted == 1 and len(_informed(ble, per)) == 1
        assert ble.values[per.h.control] != nonce  # the challenge is spent


def test_a_warn_with_a_wrong_tag_plays_nothing():
    per, ble, board = _make()
    nonce = ble.values[per.h.control]
    good = _warn(frame.PATTERN_PROXIMITY, nonce)
    flipped = good[:17] + bytes((good[17] ^ 1,))
    body = struct.pack(">BBII", frame.VERSION, OP_WARN, 0, frame.PATTERN_PROXIMITY)
    no_nonce = body + Hmac(derive(KEY, b"msa1 cmd")).digest(
        struct.pack(">I", BUTTON_ID) + body)[:8]  # tagged as an ACK is: answers no challenge
    for cmd in (flipped, _warn(frame.PATTERN_PROXIMITY, nonce, bytes(32)), no_nonce):
        _write(per, ble, board, cmd)
    _run(per, board, board.now_ms + 10000)
    assert board.motor.transitions == [] and per.commands_accepted == 0
    assert ble.values[per.h.control] == nonce and _informed(ble, per) == []


def test_a_replayed_warn_plays_nothing():
    per, ble, board = _make()
    nonce = ble.values[per.h.control]
    cmd = _warn(frame.PATTERN_LOW_BATTERY, nonce)
    _write(per, ble, board, cmd)
    _run(per, board, board.now_ms + 5000)
    played = list(board.motor.transitions)
    assert len(played) == 4
    _write(per, ble, board, cmd)  # recorded and written again: the challenge has moved on
    _run(per, board, board.now_ms + 5000)
    assert board.motor.transitions == played and per.commands_accepted == 1


def test_a_warn_made_for_an_earlier_connection_plays_nothing():
    per, ble, board = _make()
    cmd = _warn(frame.PATTERN_PROXIMITY, ble.values[per.h.control])  # never delivered
    ble.event(_CONNECT, (2, 0, b"\xc0\x00\x00\x00\x00\x11"))  # a new link renews the challenge
    per.turn(board.ticks_ms())
    _write(per, ble, board, cmd)
    _run(per, board, board.now_ms + 10000)
    assert board.motor.transitions == [] and per.commands_accepted == 0


def test_a_warn_for_an_unknown_pattern_fails_like_any_check():
    per, ble, board = _make()
    nonce = ble.values[per.h.control]
    for pattern in (0, len(haptic.PATTERNS), 255, 0xFFFFFFFF):
        _write(per, ble, board, _warn(pattern, nonce))
    _run(per, board, board.now_ms + 10000)
    assert board.motor.transitions == [] and per.commands_accepted == 0
    assert ble.values[per.h.control] == nonce and _informed(ble, per) == []  # no admission
    _write(per, ble, board, _warn(frame.PATTERN_TEST, nonce))  # the challenge still stands
    assert per.commands_accepted == 1 and board.motor.transitions[0][1] == 1


def test_without_a_motor_a_warn_is_verified_and_the_host_sees_no_difference():
    seen = []
    played = []
    for board in (SimBoard(start_ms=1000), _NoMotorBoard(start_ms=1000)):
        per, ble, board = _make(board)
        nonce = ble.values[per.h.control]
        _write(per, ble, board, _warn(frame.PATTERN_PROXIMITY, nonce))
        assert per.commands_accepted == 1 and ble.values[per.h.control] != nonce
        _run(per, board, board.now_ms + 10000)
        # What a host, or anyone listening, can observe of the button: the same.
        seen.append((ble.notified, ble.indicated, ble.disconnected,
                     len(ble.values[per.h.control])))
        played.append(len(board.motor.transitions))
    assert seen[0] == seen[1] and played == [8, 0]


def test_a_warn_during_a_pattern_replaces_it_after_a_pause():
    per, ble, board = _make()
    _write(per, ble, board, _warn(frame.PATTERN_PROXIMITY, ble.values[per.h.control]))
    t0 = board.now_ms
    _run(per, board, t0 + 1500)  # the second long pulse is on
    _write(per, ble, board, _warn(frame.PATTERN_TEST, ble.values[per.h.control]))
    _run(per, board, t0 + 10000)
    start = t0 + 1500 + haptic.REPLACE_GAP_MS
    assert board.motor.transitions == (_expected((800, 400, 300), t0)
                                       + _expected(haptic.PATTERNS[frame.PATTERN_TEST], start))


def _felt(transitions):
    """What a wearer tells apart: the number of pulses and each one short or long."""
    pulses = []
    for i in range(0, len(transitions) - 1, 2):
        assert transitions[i][1] == 1 and transitions[i + 1][1] == 0
        ms = transitions[i + 1][0] - transitions[i][0]
        assert ms <= 200 or ms >= 800, ms  # nothing in between: no doubt which it was
        pulses.append("long" if ms >= 800 else "short")
    for i in range(1, len(transitions) - 1, 2):
        assert transitions[i + 1][0] - transitions[i][0] >= 350  # pulses felt apart
    return (len(pulses), tuple(pulses))


def test_no_two_patterns_are_the_same_signal():
    felt = {}
    for pattern in range(1, len(haptic.PATTERNS)):
        per, ble, board = _make()
        _write(per, ble, board, _warn(pattern, ble.values[per.h.control]))
        _run(per, board, board.now_ms + 10000)
        felt[pattern] = _felt(board.motor.transitions)
    for a in felt:
        for b in felt:
            assert a == b or felt[a] != felt[b], (a, b, felt[a])


class _Recorder:
    """A motor pin that records into a buffer made beforehand: it allocates nothing either."""

    def __init__(self):
        self.levels = bytearray(32)
        self.n = 0

    def value(self, level):
        self.levels[self.n] = level
        self.n += 1


class _RecorderBoard(SimBoard):
    def __init__(self):
        super().__init__(start_ms=1000)
        self.pin = _Recorder()

    def Vibration(self):
        return self.pin


def test_playing_a_pattern_allocates_nothing():
    board = _RecorderBoard()
    h = haptic.Haptic(board)
    steps = haptic.PATTERNS[frame.PATTERN_PROXIMITY]
    micropython.heap_lock()  # MicroPython: any allocation from here raises MemoryError
    try:
        h.play(frame.PATTERN_LINK_LOST, board.ticks_ms())
        h.turn(board.ticks_ms())
        h.play(frame.PATTERN_PROXIMITY, board.ticks_ms())  # replaces it
        wait = h.turn(board.ticks_ms())
        while wait >= 0:
            board.now_ms += wait
            wait = h.turn(board.ticks_ms())
    finally:
        micropython.heap_unlock()
    assert bytes(board.pin.levels[:board.pin.n]) == bytes((1, 0) + (1, 0) * (len(steps) // 2)
                                                          + (1, 0))


def test_a_sleeping_button_stays_awake_while_the_motor_plays():
    per, ble, board = _make(power="sleep")
    p = power.Power(board, per._button.cfg)
    _write(per, ble, board, _warn(frame.PATTERN_PROXIMITY, ble.values[per.h.control]))
    p.owed = False  # this wake's heartbeat is not what is tested here
    end = board.now_ms + sum(haptic.PATTERNS[frame.PATTERN_PROXIMITY])
    while True:
        assert p.due_ms(per, per._button, board.ticks_ms()) > 0, board.now_ms
        wait = per.turn(board.ticks_ms())
        if not per.haptic.playing:
            break
        board.advance(wait)
    assert board.now_ms == end and board.motor.level == 0
    board.advance(1499)
    assert p.due_ms(per, per._button, board.ticks_ms()) > 0  # then the usual linger
    board.advance(1)
    assert p.due_ms(per, per._button, board.ticks_ms()) == 0
