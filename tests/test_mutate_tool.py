"""The mutation command's own rule for code that runs at import time (tools/mutate.py): mutmut
cannot switch on a mutant of a function that runs while modules are imported, so the command
tries such survivors written into the source. Which functions those are is tested here."""
from __future__ import annotations

from msa.tools.mutate import _import_time_functions

MODULE = '''
def table(n):
    return list(range(n))

def allow(roles):
    def wrap(handler):
        return handler
    return wrap

def plain():
    return 1

def local(f):
    return f

TABLE = table(3)

@local
def decorated():
    return 2
'''
OTHER = '''
from module import allow

@allow({"operator"})
async def handler(request):
    return None
'''


def test_top_level_calls_and_decorators_anywhere_in_the_package_run_at_import() -> None:
    found = _import_time_functions(MODULE, [OTHER])
    assert {"table", "local", "allow"} <= found
    assert "plain" not in found and "decorated" not in found and "wrap" not in found
    # Without the other module, `allow` is never run at import time: mutmut's switch works.
    assert "allow" not in _import_time_functions(MODULE)
