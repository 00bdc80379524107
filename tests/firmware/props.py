"""Scenario runners that the Hypothesis properties (tests/test_firmware_properties.py) call on
both interpreters with the same generated inputs; results are plain lists and dicts."""
import battery
import counters
import store
from cutfs import CutFs, PowerCut
from debounce import Debouncer
from gesture import Gesture
from sim import SimBoard


def _drive(board, start_ms, edges, tail_ms):
    for t, pressed in edges:
        board.run_until(start_ms + t)
        board.set_pressed(pressed)
    end = edges[-1][0] if edges else 0
    board.run_until(start_ms + end + tail_ms)


def debounce_run(start_ms, window_ms, edges):
    """Feeds (t_ms, pressed) edges; returns [["press"|"release", t_ms relative to start]]."""
    board = SimBoard(start_ms)
    t0 = board.ticks_ms()
    out = []
    Debouncer(board.Button(), board.Timer(0), board,
              lambda t: out.append(["press", board.ticks_diff(t, t0)]),
              lambda t: out.append(["release", board.ticks_diff(t, t0)]), window_ms)
    _drive(board, start_ms, edges, 10 * window_ms)
    return out


def gesture_run(start_ms, window_ms, kind, hold_ms, count, within_ms, edges):
    """Debouncer and gesture together; returns [[gesture, press_ms, fired_at_ms]] (relative)."""
    board = SimBoard(start_ms)
    t0 = board.ticks_ms()
    out = []

    def fired(gesture, press_ms):
        out.append([gesture, board.ticks_diff(press_ms, t0),
                    board.ticks_diff(board.ticks_ms(), t0)])

    g = Gesture(board.Timer(1), board, fired, kind, hold_ms, count, within_ms)
    d = Debouncer(board.Button(), board.Timer(0), board, g.on_press, g.on_release, window_ms,
                  g.on_settled)
    g.attach(d)
    _drive(board, start_ms, edges, hold_ms + 10 * window_ms)
    return out


def battery_run(chemistry, millivolts, hysteresis_pct, low_pct):
    """Feeds cell voltages through a sim ADC; returns [[reported %, low flag]] per sample."""
    board = SimBoard()
    bat = battery.Battery(chemistry, board.ADC_MAX_COUNTS, board.ADC_REF_MV,
                          board.DIVIDER_NUM, board.DIVIDER_DEN, hysteresis_pct, low_pct)
    out = []
    for mv in millivolts:
        board.battery_mv = mv
        out.append([bat.update(board.battery_counts()), bat.low])
    return out


def percent_table(chemistry, millivolts):
    """percent() for each voltage."""
    curve = battery.CURVES[chemistry]
    return [battery.percent(curve, mv) for mv in millivolts]


def store_powercut(budget, saves):
    """Saves payloads (hex) in order with the power failing after `budget` steps, then reboots.

    Returns {"completed": saves finished before the cut, "loaded": hex after reboot or None}.
    """
    fs = CutFs(budget=budget)
    st = store.Store("/flash", fs)
    completed = 0
    try:
        for payload in saves:
            st.save("rec", bytes.fromhex(payload))
            completed += 1
    except PowerCut:
        pass
    fs.budget = -1
    loaded = store.Store("/flash", fs).load("rec")
    return {"completed": completed, "loaded": None if loaded is None else loaded.hex(),
            "steps": fs.steps}


def counters_powercut(budget, boots, per_boot, block):
    """Boots `boots` times, each taking up to per_boot numbers, the power failing after `budget`
    steps at some point; returns every (boot_id, seq) handed out, in order."""
    fs = CutFs(budget=budget)
    issued = []
    for _ in range(boots):
        try:
            c = counters.Counters(store.Store("/flash", fs), block)
            for _ in range(per_boot):
                issued.append([c.boot_id, c.next_seq()])
        except PowerCut:
            fs.budget = -1  # power comes back; the next loop iteration is the reboot
    return issued


def encode_frames(key_hex, centre_key_hex, button_id, specs):
    """Encodes [kind, boot_id, seq, gesture, battery, age] specs with the firmware encoder."""
    from frame import FrameEncoder
    enc = FrameEncoder(bytes.fromhex(key_hex), bytes.fromhex(centre_key_hex), button_id)
    return [bytes(enc.encode(*spec)).hex() for spec in specs]


def seal_frames(key_hex, frames_hex):
    """Seals frames into advert payloads with the firmware's burst sealer."""
    from burst import BurstSealer
    sealer = BurstSealer(bytes.fromhex(key_hex))
    return [bytes(sealer.seal(bytes.fromhex(f))).hex() for f in frames_hex]


def check_command(key_hex, button_id, cmd_hex, nonce_hex):
    """[op, seq, value] if the firmware accepts a command, else the rejection reason."""
    from frame import CommandVerifier
    try:
        return list(CommandVerifier(bytes.fromhex(key_hex), button_id).verify(
            bytes.fromhex(cmd_hex), bytes.fromhex(nonce_hex)))
    except ValueError as exc:
        return exc.args[0]


def press_path_allocation_free(hold_ms):
    """Runs pin IRQ -> debounce -> gesture -> hand-over with the heap locked (MicroPython).

    Returns the gestures seen, or raises MemoryError if anything on the path allocated.
    """
    import micropython

    import button
    import config
    board = SimBoard(start_ms=100)
    st = store.Store("/flash", CutFs())
    seen = [0]

    def notify():
        seen[0] += 1

    b = button.Button(board, st, config.validate({"button_id": 3, "key": "22" * 32,
                                                      "centre_key": "c2" * 32}), notify)
    board.advance(1)
    micropython.heap_lock()
    try:
        board.set_pressed(True)
        board.advance(1)
        board.set_pressed(False)
        board.advance(1)
        board.set_pressed(True)
        board.advance(hold_ms)
        board.set_pressed(False)
        board.advance(100)
    finally:
        micropython.heap_unlock()
    return [seen[0], b.service() > 0]
