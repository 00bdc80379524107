"""Evidence bundle commands: `msa centre export` (one incident as a signed folder), `msa centre
key` (the centre's public key to publish and pin) and `msa verify` (check a bundle anywhere,
without the centre). The lead registers them on the msa groups; `python -m
msa.tools.cli_evidence` runs them on their own (e.g. on a prosecutor's machine)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from .dbopt import DATABASE
from .errors import ToolError
from .who import cli_actor

_STATE_DIR = click.option("--state-dir", required=True,
                          type=click.Path(file_okay=False, exists=True, path_type=Path),
                          help="The centre's state folder (as given to msa centre run).")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
_BUTTON = re.compile(r"(?:0x)?([0-9a-fA-F]{1,8})", re.ASCII)


@click.command("export")
@_STATE_DIR
@click.option("--incident", "ref", required=True, help="The incident, e.g. INC-000012.")
@click.option("--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="A new (or empty) folder for the bundle.")
@DATABASE
def export(state_dir: Path, ref: str, out_dir: Path, database: str | None) -> None:
    """Export one incident as a signed evidence bundle (recorded in the audit log).

    Example: msa centre export --state-dir /var/lib/msa-centre --incident INC-000012
    --out ./INC-000012-evidence

    With --database the incident is read from the centre's PostgreSQL database; the bundle
    is signed with the key in --state-dir all the same.
    """
    from msa.centre.evidence import export as export_bundle
    from msa.centre.signing import signing_key

    folder = export_bundle(state_dir, ref, out_dir, actor=cli_actor(), source="cli",
                           database=database)
    click.echo(f"bundle: {folder}")
    click.echo(f"signed by centre key {signing_key(state_dir).fingerprint}")


@click.command("key")
@_STATE_DIR
def key(state_dir: Path) -> None:
    """Print the centre's public signing key and its fingerprint (made on first use): publish
    both, so that whoever checks a bundle can pin the key.

    Example: msa centre key --state-dir /var/lib/msa-centre
    """
    from msa.centre.signing import signing_key

    found = signing_key(state_dir)
    click.echo(f"public key: {found.public_key.hex()}")
    click.echo(f"fingerprint: {found.fingerprint}")


def _public_key(hex_key: str | None, key_file: Path | None) -> bytes | None:
    if hex_key is not None and key_file is not None:
        raise ToolError("give --public-key or --public-key-file, not both")
    if key_file is not None:
        try:
            hex_key = key_file.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ToolError(f"cannot read {key_file}: {exc}",
                            "it must hold the 64 hex digits msa centre key prints") from None
    if hex_key is None:
        return None
    if not _HEX64.fullmatch(hex_key):
        raise ToolError("the centre's public key is 64 hex digits",
                        "copy it as msa centre key prints it")
    return bytes.fromhex(hex_key)


def _centre_keys(key_files: tuple[Path, ...], buttons: tuple[str, ...]
                 ) -> dict[int, bytes] | None:
    from msa.host.config import read_secret
    from msa.host.errors import HostError

    if len(key_files) != len(buttons):
        raise ToolError("each --centre-key-file needs its --button (and each --button its"
                        " key file), in the same order")
    keys: dict[int, bytes] = {}
    for key_file, button in zip(key_files, buttons):
        found = _BUTTON.fullmatch(button)
        if found is None or int(found[1], 16) == 0:
            raise ToolError(f"--button {button!r} is no button id",
                            "give its 8 hex digits, e.g. 0c0ffee5")
        try:
            secret = read_secret("--centre-key-file", key_file.name, key_file.parent,
                                 str(key_file), (64,))
        except HostError as exc:
            raise ToolError(str(exc)) from None
        keys[int(found[1], 16)] = bytes.fromhex(secret)
    return keys or None


@click.command("verify")
@click.argument("bundle", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--public-key", "hex_key", help="The centre's public key (64 hex digits) to pin.")
@click.option("--public-key-file", type=click.Path(dir_okay=False, exists=True,
                                                   path_type=Path),
              help="A file holding the centre's public key (64 hex digits) to pin.")
@click.option("--centre-key-file", "key_files", multiple=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A button's K_c (64 hex digits, a 0600 file), to check its frames;"
                   " repeatable, each with its --button.")
@click.option("--button", "buttons", multiple=True,
              help="The button id (8 hex digits) of the --centre-key-file in the same place.")
def verify(bundle: Path, hex_key: str | None, public_key_file: Path | None,
           key_files: tuple[Path, ...], buttons: tuple[str, ...]) -> None:
    """Check an evidence bundle: signature, files, audit excerpt, frames, timeline. Prints
    each check; exits non-zero if any fails. Needs no centre.

    Example: msa verify ./INC-000012-evidence --public-key-file centre.pub
    --centre-key-file button.kc --button 0c0ffee5
    """
    from msa.centre.evidence_check import verify as verify_bundle  # no database code

    report = verify_bundle(bundle, public_key=_public_key(hex_key, public_key_file),
                           centre_keys=_centre_keys(key_files, buttons))
    for check in report.checks:
        click.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    if not report.ok:
        failed = sum(not c.ok for c in report.checks)
        raise ToolError(f"{bundle} does NOT verify: {failed} of {len(report.checks)} checks"
                        " failed", "do not rely on it; ask the centre for the bundle again")
    click.echo(f"{bundle}: verified")


@click.group("evidence")
def evidence() -> None:
    """Evidence bundles on their own: export, key, verify."""


for _command in (export, key, verify):
    evidence.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """`python -m msa.tools.cli_evidence`: the same `msa: ...` boundary as msa's own."""
    from msa.centre.errors import CentreError

    try:
        evidence.main(args=argv, prog_name="msa-evidence", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("msa: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (ToolError, CentreError) as exc:
        click.echo(f"msa: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
