"""Who the centre's audit log names for a command run on this machine: the operating-system
user, as `cli:<user>` (the web names the account; docs/centre.md)."""
from __future__ import annotations

import getpass


def cli_actor() -> str:
    return f"cli:{getpass.getuser()}"
