"""Power-cut-safe record store (both interpreters)."""
import store
from cutfs import CutFs


def test_crc32_matches_the_standard_check_value():
    assert store.crc32(b"123456789") == 0xCBF43926


def test_save_load_round_trip_and_newest_wins():
    fs = CutFs()
    st = store.Store("/flash", fs)
    assert st.load("cfg") is None
    st.save("cfg", b"one")
    st.save("cfg", b"two")
    st.save("cfg", b"three")
    assert store.Store("/flash", fs).load("cfg") == b"three"


def test_records_are_independent():
    fs = CutFs()
    st = store.Store("/flash", fs)
    st.save("a", b"1")
    st.save("b", b"2")
    assert st.load("a") == b"1" and st.load("b") == b"2"


def test_a_corrupted_newest_slot_falls_back_to_the_previous_value():
    fs = CutFs()
    st = store.Store("/flash", fs)
    st.save("cfg", b"old")
    st.save("cfg", b"new")  # generation 2 lands in slot b
    raw = bytearray(fs.files["/flash/cfg.b"])
    raw[12] ^= 0xFF
    fs.files["/flash/cfg.b"] = bytes(raw)
    assert store.Store("/flash", fs).load("cfg") == b"old"


def test_garbage_and_truncated_slots_are_ignored():
    fs = CutFs()
    fs.files["/flash/cfg.a"] = b"MSA1garbage"
    fs.files["/flash/cfg.b"] = b""
    assert store.Store("/flash", fs).load("cfg") is None


def test_oversized_payload_is_refused():
    st = store.Store("/flash", CutFs())
    try:
        st.save("cfg", bytes(store.MAX_PAYLOAD + 1))
    except ValueError:
        return
    raise AssertionError("accepted an oversized payload")


def test_erase_forgets_a_record():
    fs = CutFs()
    st = store.Store("/flash", fs)
    st.save("cfg", b"x")
    st.erase("cfg")
    assert store.Store("/flash", fs).load("cfg") is None and not fs.files


def test_real_filesystem_round_trip():
    import os
    root = "/tmp/msa-store-test-%d" % (os.urandom(1)[0] * 256 + os.urandom(1)[0])
    os.mkdir(root)
    try:
        st = store.Store(root)
        st.save("cfg", b"hello")
        st.save("cfg", b"world")
        assert store.Store(root).load("cfg") == b"world"
    finally:
        for name in os.listdir(root):
            os.remove(root + "/" + name)
        os.rmdir(root)
