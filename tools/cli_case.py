"""The centre's case commands (msa case add, show, issue, revoke, tag-add, tag-retire; the
proximity ones are in tools/cli_zone.py): the case
file a button is provisioned for, kept in the reference centre's registry (never on the button),
the credentials of the case's host (an API token and a DC-09 account and key, good for the
case's buttons only) and the suspect's GPS tags (each its own secret), every secret shown once at
issue and never again. Registered in tools/cli.py."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .dbopt import RegistryLocation

if TYPE_CHECKING:
    from msa.centre.hosts import Hosts
    from msa.centre.registry import Registry
    from msa.centre.tags import Tags

_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")  # E.164, as the centre matches SMS senders

_REGISTRY = click.option("--registry", "registry_path", required=True, type=RegistryLocation(),
                         help="The centre's registry (STATE_DIR/registry.db of msa centre), or"
                              " its PostgreSQL database (postgresql://USER@HOST:PORT/DBNAME).")


def _phone(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    if value is None or value == "":
        return ""
    if not _PHONE.fullmatch(value):
        raise click.BadParameter("expected an international number such as +32470000001")
    return value


@click.group("case")
def case() -> None:
    """The case files at the centre that buttons are provisioned for."""


@case.command("add")
@_REGISTRY
@click.option("--case", "case_ref", required=True, help="The case reference, e.g. GENT-2026-0147.")
@click.option("--victim", required=True, help="The protected person's name.")
@click.option("--victim-phone", callback=_phone, help="Their phone, international form.")
@click.option("--host-phone", callback=_phone,
              help="The SIM number of their host, to recognise its SMS ghost calls.")
@click.option("--suspect", default="", help="The suspect's name.")
@click.option("--suspect-notes", default="", help="What responders should know.")
@click.option("--measure", "measures", multiple=True,
              help="A protective measure, e.g. 'restraining order, 500 m' (repeatable).")
@click.option("--weapons", is_flag=True, help="The suspect is known to have weapons.")
def case_add(registry_path: Path | str, case_ref: str, victim: str, victim_phone: str,
             host_phone: str, suspect: str, suspect_notes: str, measures: tuple[str, ...],
             weapons: bool) -> None:
    """Add a case (or update it): what the operator sees with the case's alarms.

    Example: msa case add --registry /var/lib/msa-centre/registry.db
    --case GENT-2026-0147 --victim "Jane Example" --victim-phone +32470000001
    """
    from msa.centre.registry import Case, Registry

    from .dbopt import make_registry_folder

    if not case_ref.strip() or not victim.strip():
        raise click.BadParameter("must not be empty", param_hint="--case/--victim")
    make_registry_folder(registry_path)
    registry = Registry(registry_path)
    try:
        existed = registry.case(case_ref) is not None
        registry.put_case(Case(case_ref, victim, victim_phone, suspect, suspect_notes,
                               measures, weapons, host_phone))
    finally:
        registry.close()
    click.echo(f"case {case_ref}: {'updated' if existed else 'added'}")


@case.command("show")
@_REGISTRY
@click.option("--case", "case_ref", required=True, help="The case reference.")
def case_show(registry_path: Path | str, case_ref: str) -> None:
    """Show a case and the buttons in service for it (ids only: keys are never shown).

    Example: msa case show --registry /var/lib/msa-centre/registry.db --case GENT-2026-0147
    """
    from msa.centre.audit import AuditLog
    from msa.centre.registry import Registry

    from .dbopt import require_registry
    from .errors import ToolError
    from .who import cli_actor

    require_registry(registry_path)
    registry = Registry(registry_path)
    try:
        found = registry.case(case_ref)
        if found is None:
            raise ToolError(f"no case {case_ref!r} in {registry.path}",
                            "add it with msa case add")
        # A view of a case file, as on the operator's page: audited before it is shown.
        audit = AuditLog(registry.place.sibling("audit"))
        try:
            audit.append(cli_actor(), "case.view", case_ref, "cli", {"via": "msa case show"})
        finally:
            audit.close()
        buttons = [b for b in registry.buttons()
                   if (c := registry.case_of(b)) is not None and c.case_ref == case_ref]
        hosts = _hosts(registry).of_case(case_ref)
        tags = _tags(registry).of_case(case_ref)
    finally:
        registry.close()
    click.echo(f"case {found.case_ref}: victim {found.victim}"
               + (f", {found.victim_phone}" if found.victim_phone else ""))
    if found.suspect:
        click.echo(f"  suspect: {found.suspect}" + (" (weapons)" if found.weapons else ""))
    for m in found.measures:
        click.echo(f"  measure: {m}")
    click.echo("  buttons in service: " + (", ".join(f"{b:08x}" for b in buttons) or "none"))
    for h in hosts:  # names and accounts only: the token and key were shown once, at issue
        click.echo(f"  host {h.name}: DC-09 account {h.dc09_account}, issued"
                   f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(h.issued_at))}")
    for t in tags:  # ids only: the secret was shown once, at tag-add
        click.echo(f"  tag {t.tag_id}: every {t.interval_s} s, "
                   + ("retired" if t.retired else "in service") + ", issued"
                   f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(t.issued_at))}")
    from .cli_zone import proximity_lines
    for line in proximity_lines(registry_path, case_ref):
        click.echo(line)


def _hosts(registry: Registry) -> Hosts:
    from msa.centre.hosts import Hosts
    return Hosts(registry)


def _tags(registry: Registry) -> Tags:
    from msa.centre.tags import Tags
    return Tags(registry)


def _fresh(*outs: Path | None) -> None:
    """Refuses, before anything is issued, a secret's file that exists or has no folder."""
    from .errors import ToolError

    for out in outs:
        if out is not None and (out.exists() or not out.parent.is_dir()):
            raise ToolError(f"{out} exists or its folder does not", "give a new file in an"
                            " existing folder (a secret is never overwritten)")


def _open(registry_path: Path | str) -> Registry:
    from msa.centre.registry import Registry

    from .dbopt import require_registry

    require_registry(registry_path)
    return Registry(registry_path)


@case.command("issue")
@_REGISTRY
@click.option("--case", "case_ref", required=True, help="The case whose host this is.")
@click.option("--host", "name", default=None,
              help="A name for the host (default: the case reference); a second host of the"
                   " same case needs one of its own.")
@click.option("--token-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the API token to this new file (mode 600) instead of printing it.")
@click.option("--dc09-key-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the DC-09 key to this new file (mode 600) instead of printing it.")
def case_issue(registry_path: Path | str, case_ref: str, name: str | None, token_out: Path | None,
               dc09_key_out: Path | None) -> None:
    """Issue a host's credentials: an API token and a DC-09 account with its own AES key,
    good for the buttons of this case only. They are shown this once (printed, or written to
    the files given): the centre keeps only the token's hash (and the key, which it needs to
    decrypt). They go in the host's token and key files (mode 600) and its dc09 channel's
    `account`.

    Example: msa case issue --registry /var/lib/msa-centre/registry.db --case GENT-2026-0147
    --token-out api.token --dc09-key-out dc09.key
    """
    _fresh(token_out, dc09_key_out)
    registry = _open(registry_path)
    try:
        hosts = _hosts(registry)
        try:
            issued = hosts.issue(case_ref, name)
        finally:
            hosts.close()
        found = registry.case(case_ref)
    finally:
        registry.close()
    h = issued.host
    click.echo(f"host {h.name} of case {h.case_ref}: credentials issued. They are shown this"
               " once; write them to the host's files (mode 600) now.")
    if token_out is None:
        click.echo(f"  API token (https token_file): {issued.token}")
    else:
        _secret(token_out, issued.token)
        click.echo(f"  API token (https token_file): written to {token_out}")
    click.echo(f"  DC-09 account (dc09 account): {h.dc09_account}")
    if dc09_key_out is None:
        click.echo(f"  DC-09 key (dc09 key_file, AES-256): {issued.dc09_key.hex()}")
    else:
        _secret(dc09_key_out, issued.dc09_key.hex())
        click.echo(f"  DC-09 key (dc09 key_file, AES-256): written to {dc09_key_out}")
    if found is not None and not found.host_phone:
        click.echo(f"note: case {case_ref} has no host number: the centre takes an SMS alarm"
                   f" only from the number given with msa case add --host-phone")


def _secret(path: Path, text: str) -> None:
    """A new file only its owner may read (the host's token and key files are mode 600)."""
    from msa.common.files import write_private

    write_private(path, text + "\n", new=True)


@case.command("revoke")
@_REGISTRY
@click.option("--host", "name", default=None, help="The host to take out of service.")
@click.option("--case", "case_ref", default=None, help="Or: every host of this case.")
def case_revoke(registry_path: Path | str, name: str | None, case_ref: str | None) -> None:
    """Revoke a host's credentials (or every host's of a case): its token and DC-09 account
    stop working at once, also for a centre that is running.

    Example: msa case revoke --registry /var/lib/msa-centre/registry.db --host GENT-2026-0147
    """
    from .errors import ToolError

    if (name is None) == (case_ref is None):
        raise click.UsageError("give --host or --case (one of them)")
    registry = _open(registry_path)
    try:
        hosts = _hosts(registry)
        try:
            count = int(hosts.revoke(name)) if name is not None else \
                hosts.revoke_case(str(case_ref))
        finally:
            hosts.close()
    finally:
        registry.close()
    what = f"host {name}" if name is not None else f"the hosts of case {case_ref}"
    if not count:
        raise ToolError(f"{what}: none in service", "see msa case show")
    click.echo(f"{what}: revoked ({count})")


@case.command("tag-add")
@_REGISTRY
@click.option("--case", "case_ref", required=True, help="The case whose suspect wears the tag.")
@click.option("--interval-s", type=click.IntRange(1, 86_400), required=True,
              help="How often the tag reports (s); silent after this + 60 s, the operator is"
                   " warned.")
@click.option("--token-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the tag's secret to this new file (mode 600) instead of printing it.")
def case_tag_add(registry_path: Path | str, case_ref: str, interval_s: int,
                 token_out: Path | None) -> None:
    """Add a GPS tag worn by the case's suspect. Its secret is shown this once (printed, or
    written to the file given): it is the tag's OsmAnd device id and its bearer token for the
    JSON form; the centre keeps only its hash.

    Example: msa case tag-add --registry /var/lib/msa-centre/registry.db --case GENT-2026-0147
    --interval-s 10 --token-out tag.secret
    """
    _fresh(token_out)
    registry = _open(registry_path)
    try:
        tags = _tags(registry)
        try:
            issued = tags.issue(case_ref, interval_s)
        finally:
            tags.close()
    finally:
        registry.close()
    t = issued.tag
    click.echo(f"tag {t.tag_id} of case {t.case_ref}: reports every {t.interval_s} s. Its"
               " secret is shown this once; configure the tag with it now.")
    if token_out is None:
        click.echo(f"  secret (OsmAnd id, or Bearer token): {issued.secret}")
    else:
        _secret(token_out, issued.secret)
        click.echo(f"  secret (OsmAnd id, or Bearer token): written to {token_out}")


@case.command("tag-retire")
@_REGISTRY
@click.option("--tag", "tag_id", required=True, help="The tag to take out of service.")
def case_tag_retire(registry_path: Path | str, tag_id: str) -> None:
    """Retire a tag: its secret stops working at once (also for a running centre) and it is
    no longer supervised.

    Example: msa case tag-retire --registry /var/lib/msa-centre/registry.db --tag TAG-1A2B3C4D
    """
    from .errors import ToolError

    registry = _open(registry_path)
    try:
        tags = _tags(registry)
        try:
            retired = tags.retire(tag_id)
        finally:
            tags.close()
    finally:
        registry.close()
    if not retired:
        raise ToolError(f"tag {tag_id}: none in service", "see msa case show")
    click.echo(f"tag {tag_id}: retired")


from .cli_zone import COMMANDS as _ZONE_COMMANDS  # noqa: E402  (issue 14: radii and zones)
for _command in _ZONE_COMMANDS:
    case.add_command(_command)
