"""Advert burst sealing against the shared vectors (both interpreters)."""
import burst
import vectors

V = vectors.load()


def _hex(b):
    return "".join("%02x" % x for x in b)


def test_seal_reproduces_vectors():
    sealer = burst.BurstSealer(bytes.fromhex(V["key"]))
    for b in V["bursts"]:
        assert _hex(sealer.seal(bytes.fromhex(b["frame"]))) == b["hex"], b["name"]


def test_payload_hides_the_button_id_and_sequence():
    sealer = burst.BurstSealer(bytes.fromhex(V["key"]))
    frame = bytes.fromhex(V["frames"][0]["hex"])
    payload = bytes(sealer.seal(frame))
    assert len(payload) == burst.PAYLOAD_LEN
    assert frame[2:6] not in payload and frame[8:12] not in payload


def test_advert_is_one_manufacturer_structure_that_fits():
    sealer = burst.BurstSealer(bytes.fromhex(V["key"]))
    adv = burst.advert(sealer.seal(bytes.fromhex(V["frames"][0]["hex"])))
    assert len(adv) <= 31
    assert adv[0] == len(adv) - 1 and adv[1] == 0xFF and adv[2:4] == b"\xff\xff"
