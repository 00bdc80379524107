"""The centre's case commands (msa case add, show): the case file a button is provisioned for,
kept in the reference centre's registry (never on the button). Registered in tools/cli.py."""
from __future__ import annotations

import re
from pathlib import Path

import click

_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")  # E.164, as the centre matches SMS senders

_REGISTRY = click.option("--registry", "registry_path", required=True,
                         type=click.Path(dir_okay=False, path_type=Path),
                         help="The centre's registry (STATE_DIR/registry.db of msa centre).")


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
def case_add(registry_path: Path, case_ref: str, victim: str, victim_phone: str,
             host_phone: str, suspect: str, suspect_notes: str, measures: tuple[str, ...],
             weapons: bool) -> None:
    """Add a case (or update it): what the operator sees with the case's alarms.

    Example: msa case add --registry /var/lib/msa-centre/registry.db
    --case GENT-2026-0147 --victim "Jane Example" --victim-phone +32470000001
    """
    from msa.centre.registry import Case, Registry

    if not case_ref.strip() or not victim.strip():
        raise click.BadParameter("must not be empty", param_hint="--case/--victim")
    registry_path.parent.mkdir(parents=True, exist_ok=True)
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
def case_show(registry_path: Path, case_ref: str) -> None:
    """Show a case and the buttons in service for it (ids only: keys are never shown).

    Example: msa case show --registry /var/lib/msa-centre/registry.db --case GENT-2026-0147
    """
    from msa.centre.registry import Registry

    from .errors import ToolError

    if not registry_path.exists():
        raise ToolError(f"no registry at {registry_path}", "check --registry")
    registry = Registry(registry_path)
    try:
        found = registry.case(case_ref)
        if found is None:
            raise ToolError(f"no case {case_ref!r} in {registry_path}",
                            "add it with msa case add")
        buttons = [b for b in registry.buttons()
                   if (c := registry.case_of(b)) is not None and c.case_ref == case_ref]
    finally:
        registry.close()
    click.echo(f"case {found.case_ref}: victim {found.victim}"
               + (f", {found.victim_phone}" if found.victim_phone else ""))
    if found.suspect:
        click.echo(f"  suspect: {found.suspect}" + (" (weapons)" if found.weapons else ""))
    for m in found.measures:
        click.echo(f"  measure: {m}")
    click.echo("  buttons in service: " + (", ".join(f"{b:08x}" for b in buttons) or "none"))
