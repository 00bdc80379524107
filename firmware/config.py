"""The button's provisioned configuration: validated, kept as a power-cut-safe record.

Written over USB only (by `msa provision` through mpremote), never over the air. It holds the
button id, the 32-byte key and tuning values; never any personal data of the wearer.
"""
import json

from frame import GESTURE_HOLD, GESTURE_MULTI, GESTURE_SINGLE
from power import CONNECTED, MODES, SLEEP, SLEEP_HEARTBEAT_S

RECORD = "config"
KEY_LEN = 32
GESTURES = {"single": GESTURE_SINGLE, "hold": GESTURE_HOLD, "multi": GESTURE_MULTI}

# name: (default, lowest, highest) for the integer settings. In sleep mode heartbeat_s is also
# the timer wake's period, and defaults to power.SLEEP_HEARTBEAT_S instead.
LIMITS = {
    "button_id": (None, 1, 0xFFFFFFFF),
    "hold_ms": (2000, 100, 30000),
    "count": (3, 2, 10),
    "within_ms": (1500, 200, 10000),
    "debounce_ms": (25, 1, 200),
    "heartbeat_s": (60, 5, 3600),
    "low_battery_pct": (15, 0, 50),
    "battery_hysteresis_pct": (3, 1, 20),
    "ack_timeout_ms": (2000, 200, 30000),
}


def validate(cfg):
    """A complete, checked copy of cfg with defaults filled in; raises ValueError naming the key."""
    if not isinstance(cfg, dict):
        raise ValueError("config must be an object")
    unknown = [k for k in cfg if k not in LIMITS
               and k not in ("key", "centre_key", "gesture", "power")]
    if unknown:
        raise ValueError("unknown key: " + unknown[0])
    # "power" is absent from configurations written before it existed: connected, as then.
    # It is kept only when it is not the default, so a connected button's record reads the
    # same to firmware from before power modes (cfg.get("power", "connected") reads it).
    power = cfg.get("power", CONNECTED)
    if power not in MODES:
        raise ValueError("power: expected one of " + ", ".join(MODES))
    out = {} if power == CONNECTED else {"power": power}  # type: dict
    for name, (default, lo, hi) in LIMITS.items():
        if name == "heartbeat_s" and power == SLEEP:
            default = SLEEP_HEARTBEAT_S
        value = cfg.get(name, default)
        if value is None:
            raise ValueError(name + ": required")
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValueError("%s: expected an integer from %d to %d" % (name, lo, hi))
        out[name] = value
    # K for the host tag, commands and adverts; K_c (docs/protocol.md) for the centre tag.
    for name in ("key", "centre_key"):
        key = cfg.get(name)
        if not isinstance(key, str) or len(key) != 2 * KEY_LEN:
            raise ValueError("%s: expected %d hex digits" % (name, 2 * KEY_LEN))
        try:
            bytes.fromhex(key)
        except ValueError:
            raise ValueError(name + ": expected hex digits")
        out[name] = key
    gesture = cfg.get("gesture", "hold")
    if gesture not in GESTURES:
        raise ValueError("gesture: expected one of single, hold, multi")
    out["gesture"] = gesture
    return out


def load(store):
    """The saved configuration, or None if the button is not provisioned."""
    raw = store.load(RECORD)
    if raw is None:
        return None
    return validate(json.loads(raw))


def save(store, cfg):
    """Validates and saves; returns the saved configuration."""
    cfg = validate(cfg)
    store.save(RECORD, json.dumps(cfg).encode())
    return cfg


def key_bytes(cfg, name="key"):
    """A master key as 32 bytes: "key" (K) or "centre_key" (K_c)."""
    return bytes.fromhex(cfg[name])
