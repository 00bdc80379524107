"""Bond secrets kept on flash (both interpreters)."""
import store
from bonds import Bonds
from cutfs import CutFs

_OURS = 10  # MicroPython's type for the button's own IRK
_PEER = 2
_CCCD = 3


def _count(bonds, sec_type=None):
    return len([t for t, _, _ in bonds._items if sec_type is None or t == sec_type])


def test_secrets_survive_a_reboot_once_flushed():
    fs = CutFs()
    b = Bonds(store.Store("/flash", fs))
    b.set(_PEER, b"host-a", b"keys-a")
    b.set(_OURS, b"irk", b"\x01" * 16)
    assert b.dirty
    b.flush()
    again = Bonds(store.Store("/flash", fs))
    assert again.get(_PEER, 0, b"host-a") == b"keys-a"
    assert again.get(_PEER, 0, None) == b"keys-a"  # by index when no key is given
    assert again.get(_OURS, 0, b"irk") == b"\x01" * 16
    assert _count(again, _PEER) == 1 and _count(again) == 2


def test_delete_and_replace():
    b = Bonds(store.Store("/flash", CutFs()))
    b.set(_PEER, b"h", b"old")
    b.set(_PEER, b"h", b"new")
    assert _count(b, _PEER) == 1 and b.get(_PEER, 0, b"h") == b"new"
    b.set(_PEER, b"h", None)
    assert _count(b, _PEER) == 0 and b.get(_PEER, 0, b"h") is None


def test_a_flood_of_peers_never_evicts_the_buttons_own_keys():
    """Each peer's keys as large as a real store's (NimBLE's ble_store_value_sec is ~80
    bytes): the record never outgrows one store record, flushes, and the oldest peers give
    way, never the button's IRK."""
    fs = CutFs()
    b = Bonds(store.Store("/flash", fs))
    b.set(_OURS, b"irk", b"\x07" * 16)
    for i in range(100):
        assert b.set(_PEER, b"host-%d" % i, bytes(80) + b"%d" % i) is True
        b.flush()  # never too large to save (the old JSON record overflowed at peer 6)
    assert len(store.Store("/flash", fs).load("bonds")) <= store.MAX_PAYLOAD
    again = Bonds(store.Store("/flash", fs))
    assert again.get(_OURS, 0, b"irk") == b"\x07" * 16
    assert again.get(_PEER, 0, b"host-99") == bytes(80) + b"99"
    assert again.get(_PEER, 0, b"host-0") is None and _count(again, _PEER) >= 12


def test_once_closed_no_peer_is_added_replaced_or_deleted_and_nothing_is_evicted():
    fs = CutFs()
    b = Bonds(store.Store("/flash", fs))
    b.set(_OURS, b"irk", b"\x07" * 16)
    b.set(_PEER, b"host", b"host-keys")
    b.close_window()
    assert b.set(_PEER, b"stranger", b"keys") is False
    assert b.set(_PEER, b"host", b"other") is False and b.set(_PEER, b"host", None) is False
    assert b.set(_OURS, b"irk", b"\x01" * 16) is False
    assert b.set(_CCCD, b"host", b"\x02") is True  # subscriptions are no secret
    assert b.set(_CCCD, b"big", bytes(4000)) is False  # no room, and nothing evicted
    b.flush()
    again = Bonds(store.Store("/flash", fs))
    assert again.closed and again.get(_PEER, 0, b"host") == b"host-keys"
    assert again.get(_PEER, 0, b"stranger") is None


def test_a_secret_that_cannot_fit_is_refused_and_loses_nothing():
    b = Bonds(store.Store("/flash", CutFs()))
    b.set(_PEER, b"host", b"keys")
    assert b.set(_PEER, b"huge", bytes(store.MAX_PAYLOAD)) is False
    assert b.set(_PEER, bytes(300), b"k") is False  # a key longer than the format holds
    assert b.get(_PEER, 0, b"host") == b"keys"


def test_clear_forgets_everything_on_flash_and_opens_the_window():
    fs = CutFs()
    b = Bonds(store.Store("/flash", fs))
    b.set(_PEER, b"h", b"k")
    b.close_window()
    b.flush()
    b.clear()
    again = Bonds(store.Store("/flash", fs))
    assert _count(again) == 0 and not again.closed
