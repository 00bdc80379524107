"""The radio layer on a stand-in radio (tests/firmware/bluetooth.py) and the sim board's
virtual clock: admission by the key alone, the bond window, the guarded IRQ handler, adverts a
busy controller refused, the heartbeat's MTU (both interpreters)."""
import struct

import bluetooth  # the stand-in; also gives CPython's asyncio the flag the firmware uses
import button
import config
import peripheral
import store
from bonds import SEC_CCCD, SEC_OUR_IRK
from cutfs import CutFs
from frame import KIND_ALARM, OP_ACK, OP_TIME, Hmac, derive
from frame import VERSION as PROTOCOL
from sim import SimBoard
from version import VERSION

KEY = bytes(range(32))
BUTTON_ID = 0x12345678
_CONNECT = 1
_DISCONNECT = 2
_WRITE = 3
_MTU = 21
_ENCRYPTION = 28
_SET_SECRET = 30
_PEER = 2


class _OneLinkBoard(SimBoard):
    MAX_CONNECTIONS = 1  # as the Pico W's BTstack


def _make(board=None):
    board = board if board is not None else SimBoard(start_ms=1000)
    cfg = config.validate({"button_id": BUTTON_ID, "key": KEY.hex(),
                           "centre_key": bytes(range(64, 96)).hex()})
    b = button.Button(board, store.Store("/flash", CutFs()), cfg, None)
    ble = bluetooth.BLE()
    per = peripheral.Peripheral(ble, board, b, cfg)
    per.start()
    return per, ble, board


def _command(op, seq=0, value=0, nonce=b""):
    body = struct.pack(">BBII", PROTOCOL, op, seq, value)
    tag = Hmac(derive(KEY, b"msa1 cmd")).digest(struct.pack(">I", BUTTON_ID) + body + nonce)
    return body + tag[:8]


def _connect(per, ble, conn, encrypted=False, bonded=False, mtu=64):
    ble.event(_CONNECT, (conn, 0, b"\xc0\x00\x00\x00\x00\x10"))
    ble.event(_MTU, (conn, mtu))
    if encrypted:
        ble.event(_ENCRYPTION, (conn, 1, 0, 1 if bonded else 0, 16))
    per.turn(per._board.ticks_ms())  # the loop renews the challenge for the new link


def _prove(per, ble, board, conn):
    nonce = ble.values[per.h.control]
    ble.central_write(conn, per.h.control, _command(OP_TIME, value=1795000000, nonce=nonce))
    per.turn(board.ticks_ms())


def test_the_irq_handler_is_registered_before_the_stack_starts():
    _, ble, _ = _make()
    assert ble.handler_at_active is True  # else NimBLE keeps its public default IRK


def test_an_encrypted_bonded_central_is_not_admitted_and_is_dropped_in_time():
    per, ble, board = _make()
    _connect(per, ble, 1, encrypted=True, bonded=True)  # a "Just Works" stranger
    per._button.raise_event(KIND_ALARM, 2, board.ticks_ms())
    per.turn(board.ticks_ms())
    assert not ble.indicated  # no frame for an unproven central
    board.advance(2999)
    per.turn(board.ticks_ms())
    assert ble.disconnected == []
    board.advance(1)
    per.turn(board.ticks_ms())
    assert ble.disconnected == [1]


def test_an_unproven_central_never_stops_adverts_or_bursts():
    per, ble, board = _make()
    per.turn(board.ticks_ms())
    idle = len(ble.adverts)
    _connect(per, ble, 1, encrypted=True, bonded=True)  # the stack stopped advertising
    assert len(ble.adverts) == idle + 1 and ble.adverts[-1][1] == b"\x02\x01\x06"
    per._button.raise_event(KIND_ALARM, 2, board.ticks_ms())
    per.turn(board.ticks_ms())
    assert ble.adverts[-1][1][:4] == b"\x1e\xff\xff\xff"  # the alarm's burst


def test_a_replayed_ack_admits_no_one():
    per, ble, board = _make()
    _connect(per, ble, 1)
    ble.central_write(1, per.h.control, _command(OP_ACK, seq=1))  # tagged, but no challenge
    per.turn(board.ticks_ms())
    assert per.commands_accepted == 1  # the ACK itself is genuine and taken
    board.advance(3000)
    per.turn(board.ticks_ms())
    assert ble.disconnected == [1]


def test_the_challenge_answered_admits_and_only_then_is_the_version_told():
    per, ble, board = _make()
    _connect(per, ble, 1)
    per.turn(board.ticks_ms())
    assert not [n for n in ble.notified if n[1] == per.h.info]
    _prove(per, ble, board, 1)
    assert (1, per.h.info, VERSION.encode()) in ble.notified
    board.advance(60000)
    per.turn(board.ticks_ms())
    assert ble.disconnected == []
    assert [i for i in ble.indicated if i[0] == 1]  # the boot notice went to it


def test_nothing_readable_names_the_button():
    per, ble, _ = _make()
    readable = [h for h in (per.h.event, per.h.status, per.h.info)
                if ble.flags_of(h) & 0x0002]
    assert readable == []  # frames and the version only go to a proven central
    assert len(ble.services) == 2  # the alarm service and Battery: no Device Information
    uuids = [ble.uuid_of(h).value for h in (per.h.event, per.h.status, per.h.control)]
    assert len(set(uuids)) == 3 and all(len(u) == 36 for u in uuids)
    # Not the alarm service's old UUID, which was one fixed, published value.
    assert ble.services[0][0].value != "38cbc706-a3ce-47ca-82bf-a33ed66043c9"


def test_the_control_buffer_holds_a_whole_command():
    per, ble, _ = _make()
    assert ble.buffers[per.h.control] >= 18


def test_the_bond_window_closes_when_a_bonded_central_proves_the_key():
    per, ble, board = _make()
    assert ble.settings.get("bond") is True
    assert ble.event(_SET_SECRET, (_PEER, b"host", b"host-keys")) is True
    _connect(per, ble, 1, encrypted=True, bonded=True)
    _prove(per, ble, board, 1)
    assert per.bonds.closed and ble.settings["bond"] is False
    assert ble.event(_SET_SECRET, (_PEER, b"stranger", b"keys")) is False
    assert ble.event(_SET_SECRET, (_PEER, b"host", b"stranger-keys")) is False  # replace
    assert ble.event(_SET_SECRET, (_PEER, b"host", None)) is False  # repeat pairing's delete
    assert ble.event(_SET_SECRET, (SEC_CCCD, b"host", b"\x02")) is True  # not a secret
    assert per.bonds.get(_PEER, 0, b"host") == b"host-keys"


def test_proof_over_a_link_without_a_bond_leaves_the_window_open():
    per, ble, board = _make()
    _connect(per, ble, 1, encrypted=True, bonded=False)
    _prove(per, ble, board, 1)
    assert not per.bonds.closed


def test_the_window_stays_closed_across_a_reboot():
    per, ble, board = _make()
    _connect(per, ble, 1, encrypted=True, bonded=True)
    _prove(per, ble, board, 1)
    st = per._button.store
    cfg = per._button.cfg
    again = peripheral.Peripheral(bluetooth.BLE(), board, button.Button(board, st, cfg), cfg)
    assert again.bonds.closed


def test_no_heartbeat_over_a_too_small_mtu():
    per, ble, board = _make()
    _connect(per, ble, 1, mtu=36)  # one short of a 34-byte frame and the ATT header
    _prove(per, ble, board, 1)
    per.heartbeat(board.ticks_ms())
    assert not [n for n in ble.notified if n[1] == per.h.status]
    ble.event(_MTU, (1, 37))
    per.heartbeat(board.ticks_ms())
    assert [n for n in ble.notified if n[1] == per.h.status]


def test_a_fault_in_the_irq_handler_is_counted_and_the_handler_lives():
    per, ble, board = _make()
    assert ble.event(_CONNECT, ()) is None  # a handling that raises (here: no conn handle)
    assert per.irq_faults == 1 and ble.handler is not None and ble.handler_failures == 0
    _connect(per, ble, 2)
    _prove(per, ble, board, 2)
    assert (2, per.h.info, VERSION.encode()) in ble.notified


def test_adverts_a_busy_controller_refused_are_tried_again_soon():
    per, ble, board = _make()
    ble.busy = 2
    assert per.turn(board.ticks_ms()) <= 500
    board.advance(500)
    per.turn(board.ticks_ms())
    board.advance(500)
    per.turn(board.ticks_ms())
    assert ble.adverts and ble.adverts[-1][1] == b"\x02\x01\x06"


def test_a_radio_that_refuses_adverts_for_a_minute_stops_proving_life():
    per, ble, board = _make()
    ble.busy = 10 ** 6
    loops = []
    for _ in range(140):  # 70 s, a pass every 500 ms
        per.turn(board.ticks_ms())
        loops.append(per.loops)
        board.advance(500)
    assert loops[110] < loops[125] == loops[-1]  # after 60 s: the watchdog will bite


def test_a_single_connection_board_drops_a_stranger_sooner():
    per, ble, board = _make(_OneLinkBoard(start_ms=1000))
    _connect(per, ble, 1)
    board.advance(1499)
    per.turn(board.ticks_ms())
    assert ble.disconnected == []
    board.advance(1)
    per.turn(board.ticks_ms())
    assert ble.disconnected == [1]


def test_the_buttons_own_irk_is_kept_when_the_window_is_closed():
    per, ble, board = _make()
    _connect(per, ble, 1, encrypted=True, bonded=True)
    _prove(per, ble, board, 1)
    assert ble.event(_SET_SECRET, (SEC_OUR_IRK, b"irk", b"\x01" * 16)) is True  # first one
    assert ble.event(_SET_SECRET, (SEC_OUR_IRK, b"irk", b"\x02" * 16)) is False


def test_a_private_address_lasts_five_to_fifteen_minutes_at_random():
    """A stack restart makes NimBLE's new private address: at a random 5-15 min, and only
    while no host is connected."""
    lasted = []
    for _ in range(5):
        per, ble, board = _make()
        _connect(per, ble, 1, encrypted=True, bonded=True)
        _prove(per, ble, board, 1)  # the window closes: private addresses from now on
        per.turn(board.ticks_ms())
        assert ble.settings.get("addr_mode") == 2
        start_ms = board.now_ms
        board.advance(20 * 60000)
        per.turn(board.ticks_ms())
        assert ble.starts == 1  # never while the host is connected
        ble.event(_DISCONNECT, (1, 0, b"\xc0\x00\x00\x00\x00\x10"))
        per.turn(board.ticks_ms())
        assert ble.starts == 2  # overdue: the host leaves, a new address at once
        start_ms = board.now_ms
        while ble.starts == 2 and board.now_ms - start_ms < 16 * 60000:
            board.advance(1000)
            per.turn(board.ticks_ms())
        lasted.append(board.now_ms - start_ms)
        assert ble.handler_at_active and per.bonds.closed
    assert all(5 * 60000 <= ms <= 15 * 60000 + 1000 for ms in lasted), lasted
    assert len(set(ms // 10000 for ms in lasted)) > 1  # not one fixed period
