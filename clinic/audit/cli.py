"""``flask audit verify``: prove the audit log has not been altered."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from clinic.audit.operations import verify_chain

audit_cli = AppGroup("audit", help="Audit trail tools.")


@audit_cli.command("verify")
def verify() -> None:
    """Check every entry's hash and link; exit 1 naming the first bad entry."""
    checked, broken = verify_chain()
    if broken is not None:
        click.echo(f"audit log ALTERED: entry {broken.id}: {broken.reason} ({checked} entries read)", err=True)
        raise SystemExit(1)
    click.echo(f"audit log intact: {checked} entries verified")
