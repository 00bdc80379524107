"""Runs firmware test functions inside the MicroPython unix interpreter for pytest.

Reads one JSON request a line from stdin: {"mod": M, "fn": F, "args": [...]} and prints one JSON
reply a line: {"ok": true, "result": R} or {"ok": false, "error": "traceback"}. pytest keeps one
worker per session and restarts it if it dies.
"""
import io
import json
import sys


def _reply(obj):
    sys.stdout.write(json.dumps(obj))
    sys.stdout.write("\n")


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        req = json.loads(line)
        try:
            mod = __import__(req["mod"])
            result = getattr(mod, req["fn"])(*req.get("args", []))
            _reply({"ok": True, "result": result})
        except BaseException as exc:  # report everything, the worker must survive
            buf = io.StringIO()
            sys.print_exception(exc, buf)
            _reply({"ok": False, "error": buf.getvalue()})


main()
