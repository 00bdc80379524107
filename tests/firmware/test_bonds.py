"""Bond secrets kept on flash (both interpreters)."""
import store
from bonds import Bonds
from cutfs import CutFs

_OURS = 1
_PEER = 2


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
    assert again.count(_PEER) == 1 and again.count() == 2


def test_delete_and_replace():
    b = Bonds(store.Store("/flash", CutFs()))
    b.set(_PEER, b"h", b"old")
    b.set(_PEER, b"h", b"new")
    assert b.count(_PEER) == 1 and b.get(_PEER, 0, b"h") == b"new"
    b.set(_PEER, b"h", None)
    assert b.count(_PEER) == 0 and b.get(_PEER, 0, b"h") is None


def test_a_flood_of_peers_never_evicts_the_buttons_own_keys():
    b = Bonds(store.Store("/flash", CutFs()))
    b.set(_OURS, b"irk", b"\x07" * 16)
    for i in range(100):
        b.set(_PEER, b"host-%d" % i, b"k")
    assert b.get(_OURS, 0, b"irk") == b"\x07" * 16
    assert b.get(_PEER, 0, b"host-99") == b"k" and b.get(_PEER, 0, b"host-0") is None


def test_clear_forgets_everything_on_flash():
    fs = CutFs()
    b = Bonds(store.Store("/flash", fs))
    b.set(_PEER, b"h", b"k")
    b.flush()
    b.clear()
    assert Bonds(store.Store("/flash", fs)).count() == 0
