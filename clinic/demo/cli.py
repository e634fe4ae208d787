"""``flask demo seed``: realistic, deterministic demo data (docs/performance.md)."""

from __future__ import annotations

from datetime import date
from time import perf_counter

import click
from flask.cli import AppGroup

from clinic.core.time import utcnow
from clinic.core.unit_of_work import unit_of_work
from clinic.demo.loader import DEMO_PASSWORD, AlreadySeededError, analyze, seed
from clinic.extensions import db

demo_cli = AppGroup("demo", help="Synthetic demo data.")


@demo_cli.command("seed")
@click.option("--clients", "clients", type=click.IntRange(1, 1_000_000), default=200, show_default=True,
              help="Number of clients to generate.")
@click.option("--seed", "seed_value", type=int, default=1, show_default=True,
              help="Random seed: the same clients, seed and --today give the same data.")
@click.option("--today", "today_text", default=None, metavar="YYYY-MM-DD",
              help="Reference day the history ends on (default: today, UTC).")
@click.option("--force", is_flag=True, help="Add demo data even when the database already holds clients.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def seed_command(clients: int, seed_value: int, today_text: str | None, force: bool, quiet: bool) -> None:
    """Generate CLIENTS clients with years of history across sites, and demo staff accounts."""
    try:
        today = date.fromisoformat(today_text) if today_text else utcnow().date()
    except ValueError as exc:
        raise click.BadParameter("use YYYY-MM-DD", param_hint="--today") from exc
    progress = None if quiet else (lambda line: click.echo(f"  {line}", err=True))
    try:
        with unit_of_work():
            report = seed(clients=clients, seed=seed_value, today=today, force=force, progress=progress)
    except AlreadySeededError as exc:
        click.echo(f"Not seeding: {exc}. Use --force to add demo data anyway.", err=True)
        raise SystemExit(1) from exc
    started = perf_counter()
    with unit_of_work():
        analyze(db.session.connection())
    analyzed = perf_counter() - started
    click.echo(f"Seeded {clients} clients (seed {seed_value}, today {today.isoformat()}) "
               f"in {report.seconds:.1f} s (+{analyzed:.1f} s ANALYZE):")
    for table, count in sorted(report.rows.items()):
        click.echo(f"  {table:28} {count:>10}")
    click.echo(f"Demo accounts (password for all: {DEMO_PASSWORD}):")
    for email, role, sites in report.accounts:
        click.echo(f"  {email:45} {role:24} {sites}")


@demo_cli.command("accounts")
def accounts_command() -> None:
    """List the demo staff accounts to sign in with (the admin, and each site's first clinician and intake)."""
    from sqlalchemy import select

    from clinic.auth.models import User
    from clinic.demo.loader import DEMO_EMAIL_DOMAIN

    users = db.session.scalars(
        select(User).where(User.email.like(f"%@{DEMO_EMAIL_DOMAIN}"), User.is_active.is_(True)).order_by(User.id)
    ).unique().all()
    shown = [u for u in users if u.email.startswith(("admin@", "clinician1.", "intake1."))]
    if not shown:
        click.echo("No demo accounts: run `flask demo seed` first.")
        return
    click.echo(f"Demo accounts (password for all: {DEMO_PASSWORD}):")
    for user in shown:
        role = user.role.value + (" (supervisor)" if user.is_supervisor else "")
        click.echo(f"  {user.email:45} {role:24} {', '.join(sorted(site.name for site in user.sites))}")
