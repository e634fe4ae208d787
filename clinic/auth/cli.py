"""``flask users create``: the first administrator, and any account, from the command line."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup
from werkzeug.exceptions import HTTPException

from clinic.auth import operations as ops
from clinic.auth.models import Role
from clinic.core.errors import APIError
from clinic.core.unit_of_work import unit_of_work

users_cli = AppGroup("users", help="Manage staff accounts.")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--site-id", "site_ids", type=int, multiple=True, help="Site membership (repeatable).")
@click.option("--supervisor", is_flag=True, help="Mark the user as a clinical supervisor.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create(  # noqa: PLR0917 - click passes options positionally
    email: str, name: str, role: str, site_ids: tuple[int, ...], supervisor: bool, password_stdin: bool
) -> None:
    """Create a user. Without --password-stdin the password is asked for twice."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with unit_of_work():
            user = ops.create_user(
                email=email,
                name=name,
                role=Role(role),
                site_ids=list(site_ids),
                password=password,
                is_supervisor=supervisor,
            )
    except HTTPException as exc:
        if isinstance(exc, APIError) and exc.errors:
            for field, messages in exc.errors.items():
                for message in messages:
                    click.echo(f"error: {field}: {message}", err=True)
        else:
            click.echo(f"error: {exc.description}", err=True)
        raise SystemExit(1) from None
    click.echo(f"created {user.role.value} {user.email} (id {user.id})")
