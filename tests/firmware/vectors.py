"""Reads the shared hex test vectors out of docs/protocol.md (works on both interpreters)."""
import json

_BEGIN = "<!-- vectors:begin -->"
_END = "<!-- vectors:end -->"


def _default_path():
    here = __file__.replace("\\", "/").rsplit("/", 1)[0]
    return here + "/../../docs/protocol.md"


def load(path=None):
    """The vectors object from the JSON block between the markers in the protocol document."""
    if path is None:
        path = _default_path()
    with open(path) as f:
        text = f.read()
    start = text.find(_BEGIN)
    end = text.find(_END)
    if start < 0 or end < start:
        raise ValueError("no vectors block in " + path)
    block = text[start + len(_BEGIN):end]
    block = block[block.find("{"):block.rfind("}") + 1]
    return json.loads(block)
