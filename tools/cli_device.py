"""The technicians' USB commands (msa flash, provision, wipe): thin click shells over
tools/device.py and tools/provisioning.py, registered in tools/cli.py."""
from __future__ import annotations

import tempfile
from pathlib import Path

import click

from .dbopt import RegistryLocation

_PORT_HELP = "The button's serial device (e.g. /dev/ttyACM0) or socket://HOST:PORT."


def _button_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """Button ids are hex, with or without 0x, as the summaries and the host show them."""
    if value is None:
        return None
    from .device import MAX_BUTTON_ID

    try:
        number = int(value, 16)
    except ValueError:
        raise click.BadParameter("expected a button id in hex, such as 1a2b3c4d") from None
    if not 0 < number <= MAX_BUTTON_ID:
        raise click.BadParameter("a button id is from 1 to ffffffff")
    return number


@click.command("flash")
@click.option("--port", required=True, help=_PORT_HELP)
@click.option("--board", required=True, help="Board module that goes on as board.py.")
def flash(port: str, board: str) -> None:
    """Compile the firmware and copy it onto a button over USB, check each file's SHA-256 on
    the button, remove stale modules, reset and read the version back.

    Example: msa flash --port /dev/ttyACM0 --board xiao_esp32c3
    """
    from . import device
    from .usb import Usb

    with tempfile.TemporaryDirectory(prefix="msa-flash-") as folder:
        image = device.build_image(board, Path(folder))
        checked = device.check_port(Usb(port), image)
        with click.progressbar(length=len(image.files), label="copying",
                               item_show_func=lambda name: name) as bar:
            def copied(name: str) -> None:
                bar.update(1, name)
            report = device.flash(checked, copied)
    click.echo(f"{report.port}: firmware {report.version} for board {report.board}"
               f" ({report.platform}), {report.files} files, {report.bytes:,} B, verified")
    if report.removed:
        click.echo("  removed stale: " + ", ".join(report.removed))


@click.command("provision")
@click.option("--port", required=True, help=_PORT_HELP)
@click.option("--case", "case_ref", required=True, help="The case reference in the registry.")
@click.option("--registry", "registry_path", required=True, type=RegistryLocation(exists=True),
              help="The centre's case registry: its SQLite file, or the centre's PostgreSQL"
                   " database (postgresql://USER@HOST:PORT/DBNAME).")
@click.option("--button-id", callback=_button_id, help="Button id in hex (default: random).")
@click.option("--gesture", type=click.Choice(["hold", "single", "multi"]), default="hold",
              show_default=True, help="The gesture that raises the alarm.")
@click.option("--key-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the key, mode 0600, for the host's key_file.")
@click.option("--power", type=click.Choice(["connected", "sleep"]), default="connected",
              show_default=True,
              help="connected: always reachable, a press reaches the host at once (days on a"
                   " battery); sleep: deep sleep between presses and hourly heartbeats (months),"
                   " a press costs a boot.")
@click.option("--force", is_flag=True, help="Replace a button's existing configuration.")
def provision(port: str, case_ref: str, registry_path: Path | str, button_id: int | None,
              gesture: str, key_out: Path | None, power: str, force: bool) -> None:
    """Give a button a fresh key and id over USB and register it for a case. No personal data
    goes on the button, and the key is never printed.

    Example: msa provision --port /dev/ttyACM0 --case GENT-2026-0147
    --registry /var/lib/msa-centre/registry.sqlite --key-out /etc/msa/button.key
    """
    from . import provisioning
    from .usb import Usb

    r = provisioning.provision(Usb(port), registry_path, case_ref, button_id, gesture, force,
                               key_out, power)
    click.echo(f"{r.port}: provisioned button {r.button_id:08x} for case {r.case_ref}"
               f" (gesture {r.gesture}, power {r.power}, heartbeat every {r.heartbeat_s} s)")
    if r.replaced:
        held = f"{r.replaced:08x}" if r.replaced > 0 else "an unreadable configuration"
        click.echo(f"  replaced: {held}; retire that id in the registry if it was registered")
    click.echo(f"  registered in {r.registry}")
    kept = f"in {r.key_file} (mode 0600) and" if r.key_file else ""
    click.echo(f"  keys: K {kept} on the button, K_c on the button and in the registry;"
               " neither shown")


@click.command("wipe")
@click.option("--port", required=True, help=_PORT_HELP)
@click.option("--button-id", callback=_button_id,
              help="Refuse unless the device is this button (hex).")
def wipe(port: str, button_id: int | None) -> None:
    """Erase a retired button's key, configuration, bonds, counters and queued events over
    USB, and confirm each is gone.

    Example: msa wipe --port /dev/ttyACM0 --button-id 1a2b3c4d
    """
    from . import provisioning
    from .usb import Usb

    r = provisioning.wipe(Usb(port), button_id)
    held = {0: "not provisioned", -1: "unreadable configuration"}.get(
        r.button_id, f"button {r.button_id:08x}")
    click.echo(f"{r.port}: wiped ({held}); erased and read back: {', '.join(r.erased)}")
