"""Provisioned configuration: validation with clear errors (both interpreters)."""
import config
import store
from cutfs import CutFs

KEY = "00" * 32
CKEY = "c0" * 32


def _error(cfg):
    try:
        config.validate(cfg)
    except ValueError as exc:
        return exc.args[0]
    return None


def test_defaults_fill_in():
    cfg = config.validate({"button_id": 5, "key": KEY, "centre_key": CKEY})
    assert cfg["gesture"] == "hold" and cfg["hold_ms"] == 2000 and cfg["debounce_ms"] == 25


def test_errors_name_the_key():
    cases = (
        ({"key": KEY, "centre_key": CKEY}, "button_id"),
        ({"button_id": 0, "key": KEY, "centre_key": CKEY}, "button_id"),
        ({"button_id": 1, "key": "00", "centre_key": CKEY}, "key"),
        ({"button_id": 1, "key": "zz" * 32, "centre_key": CKEY}, "key"),
        ({"button_id": 1, "key": KEY, "centre_key": CKEY, "gesture": "wave"}, "gesture"),
        ({"button_id": 1, "key": KEY, "centre_key": CKEY, "hold_ms": 50}, "hold_ms"),
        ({"button_id": 1, "key": KEY, "centre_key": CKEY, "hold_ms": True}, "hold_ms"),
        ({"button_id": 1, "key": KEY, "centre_key": CKEY, "colour": "red"},
         "unknown key: colour"),
        ({"button_id": 1, "key": KEY}, "centre_key"),
        ({"button_id": 1, "key": KEY, "centre_key": "c0" * 31}, "centre_key"),
        ([], "config must be an object"),
    )
    for cfg, expected in cases:
        err = _error(cfg)
        assert err is not None and err.startswith(expected), (cfg, err)


def test_save_and_load():
    st = store.Store("/flash", CutFs())
    assert config.load(st) is None
    config.save(st, {"button_id": 9, "key": KEY, "centre_key": CKEY, "gesture": "multi",
                     "count": 4})
    cfg = config.load(st)
    assert cfg["button_id"] == 9 and cfg["count"] == 4 and config.key_bytes(cfg) == bytes(32)
    assert config.key_bytes(cfg, "centre_key") == b"\xc0" * 32
