"""The technicians' BLE, host and centre commands (msa bond, status, test-alarm, monitor,
retire): thin click shells over tools/technician.py, registered in tools/cli.py."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .cli_device import _button_id
from .dbopt import RegistryLocation

if TYPE_CHECKING:
    from msa.host.link import Backends

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_CONFIG = click.option("--config", "config_path", required=True,
                       type=click.Path(dir_okay=False, exists=True, path_type=Path),
                       help="The host's TOML configuration (as for msa host run).")
_BUTTON = click.option("--button", "button_id", callback=_button_id,
                       help="Which configured button, by id in hex (default: the first).")
_TIMEOUT = click.option("--timeout", "timeout_s", default=10.0, show_default=True,
                        type=click.FloatRange(0.5, 600),
                        help="Seconds to look for the button before giving up.")


def _when(at: float | None) -> str:
    if at is None:
        return "never"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(at))}" \
           f" ({max(time.time() - at, 0):.0f} s ago)"


def _on_radio(config_path: Path, work: Callable[[Backends | None], Awaitable[T]]) -> T:
    """Runs `work` with the Bluetooth adapter the configuration names (`[host] adapter`)."""
    from msa.host import config as host_config

    from .adapter import backends_for

    config = host_config.load(config_path)

    async def go() -> T:
        async with backends_for(config) as backends:
            return await work(backends)

    return asyncio.run(go())


def _options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """The shared options, applied as if stacked in this order."""
    def apply(f: F) -> F:
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


@click.command("bond")
@_options(_CONFIG, _BUTTON, _TIMEOUT)
def bond(config_path: Path, button_id: int | None, timeout_s: float) -> None:
    """Bond a provisioned button to this host: find it by its address, pair (LE Secure
    Connections), subscribe, prove the host's key with a TIME command, then reconnect with
    the stored bond. Stop msa host run first; it holds the button's link.

    Example: msa bond --config /etc/msa/host.toml --timeout 20
    """
    from . import technician

    r = _on_radio(config_path, lambda be: technician.bond(
        config_path, button_id=button_id, timeout_s=timeout_s, backends=be))
    click.echo(f"button {r.button_id:08x} at {r.address}: bonded")
    click.echo("  bond: stored in this host's Bluetooth stack; reconnected and encrypted with"
               " it")
    click.echo("  key: accepted by the button (TIME command); not shown")
    click.echo(f"  firmware {r.firmware}, battery {r.battery_pct}%")


@click.command("status")
@_options(_CONFIG, _BUTTON, _TIMEOUT)
def status(config_path: Path, button_id: int | None, timeout_s: float) -> None:
    """Show the button's battery, firmware, bond and provisioning state, and the host's
    sequence state, last heartbeat and undelivered messages. Works with the button away.

    Example: msa status --config /etc/msa/host.toml
    """
    from . import technician
    from .errors import NoAdapter

    r = _on_radio(config_path, lambda be: technician.status(
        config_path, button_id=button_id, timeout_s=timeout_s, backends=be))
    h = r.host
    click.echo(f"button {r.button_id:08x} at {r.address}")
    click.echo(f"  host: key file {h.key_file} present (not shown)")
    gaps = ", ".join(f"{a}..{b}" for a, b in h.gaps) or "none"
    click.echo(f"  host: highest sequence number {h.highest_seq}, gaps {gaps}")
    click.echo(f"  host: last heartbeat {_when(h.last_heartbeat)}; last event"
               f" {_when(h.last_event)}")
    click.echo(f"  host: {h.undelivered} message(s) waiting for the centre")
    b = r.button
    if b is None:
        if isinstance(r.unreachable, NoAdapter):
            raise r.unreachable  # a fault of this host, not a state of the button
        click.echo(f"  button: {r.unreachable}")
        return
    click.echo(f"  button: in range, firmware {b.firmware}, provisioned (it advertises)")
    if b.battery_pct is None:
        click.echo("  bond: none on this host (the button refuses its encrypted values);"
                   " run msa bond")
        return
    click.echo(f"  bond: present (link encrypted with it); battery {b.battery_pct}%")
    click.echo("  key: " + ("accepted by the button" if b.key_accepted else
                            "REFUSED by the button: provision again or fix key_file"))


@click.command("test-alarm")
@_options(_CONFIG, _BUTTON, _TIMEOUT)
def test_alarm(config_path: Path, button_id: int | None, timeout_s: float) -> None:
    """Raise a TEST alarm on the button and follow it through this host's outbox and
    channels to the centre, which shows it as TEST and dispatches no one. Prints the
    centre's incident reference and the time taken. Stop msa host run first.

    Example: msa test-alarm --config /etc/msa/host.toml
    """
    from . import technician

    r = _on_radio(config_path, lambda be: technician.test_alarm(
        config_path, button_id=button_id, timeout_s=timeout_s, backends=be))
    click.echo(f"button {r.button_id:08x}: TEST alarm {r.key} acknowledged by the centre as"
               f" {r.reference or '(no reference given)'} via {r.channel}"
               f" in {r.seconds * 1000:.0f} ms"
               + ("" if r.battery_pct is None else f" (battery {r.battery_pct}%)"))


@click.command("monitor")
@_options(_CONFIG, _BUTTON, _TIMEOUT)
@click.option("--count", type=click.IntRange(1), help="Stop after this many events.")
def monitor(config_path: Path, button_id: int | None, timeout_s: float,
            count: int | None) -> None:
    """Show the button's events live as the host verifies them (time, kind, seq, battery,
    gap, via), one line each, until Ctrl-C or --count events. Events still go to the centre
    as with msa host run (stop that first).

    Example: msa monitor --config /etc/msa/host.toml --count 5
    """
    from . import technician

    def line(event: Any) -> None:
        click.echo(technician.describe(event))

    try:
        _on_radio(config_path, lambda be: technician.monitor(
            config_path, line, count=count, button_id=button_id, timeout_s=timeout_s,
            backends=be))
    except KeyboardInterrupt:
        click.echo("stopped")


@click.command("retire")
@_options(_CONFIG, _BUTTON)
@click.option("--registry", "registry_path", required=True, type=RegistryLocation(exists=True),
              help="The centre's case registry: its SQLite file, or the centre's PostgreSQL"
                   " database (postgresql://USER@HOST:PORT/DBNAME).")
@click.option("--port", help="The button's serial device or socket://HOST:PORT: wipe it over"
              " USB too.")
def retire(config_path: Path, button_id: int | None, registry_path: Path | str,
           port: str | None) -> None:
    """Retire a button when its case ends: wipe it over USB (with --port), remove the host's
    bond, sequence state and key file, and retire it in the centre's registry; confirm each.

    Example: msa retire --config /etc/msa/host.toml
    --registry /var/lib/msa-centre/registry.sqlite --port /dev/ttyACM0
    """
    from . import technician
    from .errors import RetireIncomplete

    steps = _on_radio(config_path, lambda be: technician.retire(
        config_path, registry_path, port=port, button_id=button_id, backends=be))
    for s in steps:
        click.echo(f"{s.where:<7} {'done' if s.done else 'FAILED':<6} {s.what}")
    failed = [f"{s.where}: {s.what}" for s in steps if not s.done]
    if failed:
        raise RetireIncomplete(failed)
