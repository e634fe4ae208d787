"""``flask audit verify`` and ``flask audit seal``: prove the audit log has not been altered."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from clinic.audit.operations import seal_pending, verify_chain
from clinic.core.unit_of_work import unit_of_work

audit_cli = AppGroup("audit", help="Audit trail tools.")


@audit_cli.command("verify")
def verify() -> None:
    """Check every sealed entry's hash, link and sequence; exit 1 naming the first bad entry."""
    result = verify_chain()
    waiting = f"; {result.unsealed} recent entries await sealing" if result.unsealed else ""
    if result.broken is not None:
        click.echo(
            f"audit log ALTERED: entry {result.broken.id}: {result.broken.reason} ({result.checked} entries read)",
            err=True,
        )
        raise SystemExit(1)
    click.echo(f"audit log intact: {result.checked} entries verified{waiting}")


@audit_cli.command("seal")
def seal() -> None:
    """Chain every committed entry not yet sealed (the worker does this every few seconds)."""
    with unit_of_work():
        sealed = seal_pending()
    click.echo(f"sealed {sealed} entries")
