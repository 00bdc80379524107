"""Runs inside MicroPython: the unmodified firmware core on the sim board, driven over stdin.

One JSON request a line, one JSON reply a line ({"ok": true, ...} or {"ok": false, "error"}).
Requests: provision {flash, config}; boot {flash}; press {edges: [[dt_ms, pressed], ...]}; advance {ms}; service;
next_frame; ack {seq}; heartbeat; battery {mv}. Times are virtual: the simulator owns the clock.
"""
import io
import json
import sys

import button
import config
import store
from sim import SimBoard

_state = {}  # type: dict


def _provision(req):
    cfg = config.save(store.Store(req["flash"]), req["config"])
    return {"button_id": cfg["button_id"], "gesture": cfg["gesture"]}


def _boot(req):
    board = SimBoard(start_ms=req.get("start_ms", 0), battery_mv=req.get("battery_mv", 3950))
    st = store.Store(req["flash"])
    cfg = config.load(st)
    if cfg is None:
        raise ValueError("button is not provisioned: no config record in " + req["flash"])
    gestures = []
    b = button.Button(board, st, cfg, lambda: gestures.append(board.now_ms))
    _state.update(board=board, button=b, gestures=gestures)
    return {"boot_id": b.counters.boot_id, "button_id": b.button_id}


def _press(req):
    board = _state["board"]
    for dt, pressed in req["edges"]:
        board.advance(dt)
        board.set_pressed(pressed)
    return {"now_ms": board.now_ms, "gestures": _state["gestures"]}


def _advance(req):
    _state["board"].advance(req["ms"])
    return {"now_ms": _state["board"].now_ms, "gestures": _state["gestures"]}


def _service(_req):
    return {"seq": _state["button"].service()}


def _next_frame(_req):
    seq, frame = _state["button"].next_frame()
    return {"seq": seq, "frame": None if frame is None else bytes(frame).hex()}


def _ack(req):
    return {"acked": _state["button"].ack(req["seq"])}


def _heartbeat(_req):
    return {"frame": bytes(_state["button"].heartbeat_frame()).hex()}


def _battery(req):
    _state["board"].battery_mv = req["mv"]
    return {"pct": _state["button"].sample_battery()}


_OPS = {"provision": _provision, "boot": _boot, "press": _press, "advance": _advance, "service": _service,
        "next_frame": _next_frame, "ack": _ack, "heartbeat": _heartbeat, "battery": _battery}


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        try:
            req = json.loads(line)
            reply = _OPS[req["op"]](req)
            reply["ok"] = True
        except Exception as exc:  # the reply carries it; the driver keeps serving
            buf = io.StringIO()
            sys.print_exception(exc, buf)
            reply = {"ok": False, "error": buf.getvalue()}
        sys.stdout.write(json.dumps(reply) + "\n")


main()
