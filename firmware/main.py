"""Runs at boot: starts the watchdog first, then the button's firmware (app.py) on this
device's board module. An error anywhere after the watchdog is logged and resets the board
(fatal.py), so a button on battery never ends at the REPL; a Ctrl-C from a technician's tool
does reach the REPL, where the running watchdog still resets the board unless the tool holds
it (docs/technician.md)."""
import board

# (board.py on the device; the type check sees the repository's board/ folder instead)
watchdog = board.watchdog(8000)  # type: ignore[attr-defined]
try:
    import app

    app.main(watchdog)
except Exception as exc:
    import fatal

    fatal.handle(board, watchdog, exc)
