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


def _cut_save(fs, payload, budget):
    """Saves through a fresh Store (a boot) with the power failing after `budget` steps;
    returns what the next boot loads."""
    from cutfs import PowerCut
    fs.budget = budget
    try:
        store.Store("/flash", fs).save("ctr", payload)
    except PowerCut:
        pass
    fs.budget = -1
    fs.torn = "/flash/ctr.tmp" in fs.files
    return store.Store("/flash", fs).load("ctr")


def test_two_cuts_never_roll_a_record_back():
    """The first cut lands after the temporary file is synced and before the rename: the
    newest value is then only in the temporary file. A boot loads it (and hands out numbers past
    it); a second cut while the next save writes the temporary file must not bring back the
    value before it."""
    base = CutFs()
    st = store.Store("/flash", base)
    st.save("ctr", b"v1")
    st.save("ctr", b"v2")
    probe = CutFs(dict(base.files))
    store.Store("/flash", probe).save("ctr", b"v3")
    save_steps = probe.steps
    reached_tmp_only = False
    for first in range(save_steps + 1):
        fs = CutFs(dict(base.files))
        after_first = _cut_save(fs, b"v3", first)
        assert after_first in (b"v2", b"v3"), (first, after_first)
        if after_first == b"v3" and fs.torn:
            reached_tmp_only = True
        for second in range(save_steps + 1):
            fs2 = CutFs(dict(fs.files))
            after_second = _cut_save(fs2, b"v4", second)
            assert after_second in (after_first, b"v4"), (first, second, after_second)
    assert reached_tmp_only  # the dangerous first cut really happened
