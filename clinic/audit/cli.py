"""``flask audit verify``, ``seal`` and ``anchor``: prove the audit log has not been altered."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup

from clinic.audit import anchors
from clinic.audit.operations import seal_pending, verify_chain
from clinic.core.unit_of_work import unit_of_work

audit_cli = AppGroup("audit", help="Audit trail tools.")


@audit_cli.command("verify")
@click.option(
    "--anchors",
    "anchor_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file of anchors, or of log lines holding them; default: the AUDIT_ANCHOR_TARGET file.",
)
def verify(anchor_file: Path | None) -> None:
    """Check every sealed entry's hash, link and sequence, and the anchors; exit 1 naming the first bad entry."""
    try:
        known = anchors.read(anchor_file) if anchor_file is not None else anchors.configured()
    except anchors.AnchorError as exc:
        click.echo(f"cannot read the anchors: {exc}", err=True)
        raise SystemExit(2) from exc
    known, elsewhere = anchors.of_this_database(known)
    result = verify_chain(anchors=known)
    if result.broken is not None:
        where = f"entry {result.broken.id}: " if result.broken.id is not None else ""
        click.echo(
            f"audit log ALTERED: {where}{result.broken.reason} ({result.checked} entries read)",
            err=True,
        )
        raise SystemExit(1)
    notes = []
    if result.unkeyed:
        notes.append(f"the first {result.unkeyed} sealed before the chain was keyed")
    if result.anchors:
        notes.append(f"checked against {result.anchors} anchors")
    elif anchor_file is None and anchors.file_target() is None:
        notes.append("anchors go to the log: pass them with --anchors to check them")
    else:
        notes.append("no anchors yet (flask audit anchor)")
    if elsewhere:
        notes.append(f"{elsewhere} anchors of other databases skipped")
    if result.unsealed:
        notes.append(f"{result.unsealed} recent entries await sealing")
    click.echo(f"audit log intact: {result.checked} entries verified; " + "; ".join(notes))


@audit_cli.command("seal")
def seal() -> None:
    """Chain every committed entry not yet sealed (the worker does this every few seconds)."""
    with unit_of_work():
        sealed = seal_pending()
    click.echo(f"sealed {sealed} entries")


@audit_cli.command("anchor")
def anchor() -> None:
    """Write the head of the sealed chain (sequence, hash, time) to AUDIT_ANCHOR_TARGET (beat does it daily)."""
    with unit_of_work():
        written = anchors.anchor_head()
    if written is None:
        click.echo("nothing is sealed yet: no anchor written")
        return
    target = anchors.file_target() or "the log"
    click.echo(f"anchored sequence {written.seq} ({written.hash}) to {target}")
