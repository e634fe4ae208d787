"""seal audit events into the hash chain after commit

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 11:58:00

Audit events are inserted unchained (no lock on the request path) and sealed afterwards by the
worker: each gets a gap-free sequence number, the previous entry's hash and its own. The
append-only guard now allows exactly that one update of a row, and nothing else.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_CONTENT = ("id", "at", "user_id", "action", "resource", "resource_id", "client_id", "outcome", "ip")

_PG_GUARD = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.hash IS NULL AND NEW.hash IS NOT NULL AND NEW.seq IS NOT NULL
       AND ({new}, NEW.details::text) IS NOT DISTINCT FROM ({old}, OLD.details::text) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$
""".format(new=", ".join(f"NEW.{c}" for c in _CONTENT), old=", ".join(f"OLD.{c}" for c in _CONTENT))

_PG_OLD_GUARD = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$
"""

_SQLITE_SEAL_ONLY = (
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "WHEN OLD.hash IS NOT NULL OR NEW.hash IS NULL OR NEW.seq IS NULL OR "
    + " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in (*_CONTENT, "details"))
    + " BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
)
_SQLITE_NO_UPDATE = (
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
)
_SQLITE_NO_DELETE = (
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
)


def upgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=True)
    # Entries chained before this revision were chained in id order: that order is their sequence.
    if postgres:
        op.execute(
            "UPDATE audit_events SET seq = ordered.n FROM "
            "(SELECT id, row_number() OVER (ORDER BY id) AS n FROM audit_events) AS ordered "
            "WHERE audit_events.id = ordered.id"
        )
    else:
        op.execute("UPDATE audit_events SET seq = (SELECT COUNT(*) FROM audit_events AS e WHERE e.id <= audit_events.id)")
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_audit_events_seq'), ['seq'])
        batch_op.create_index('ix_audit_events_unsealed', ['id'], unique=False,
                              sqlite_where=sa.text('hash IS NULL'), postgresql_where=sa.text('hash IS NULL'))
    if postgres:
        op.execute(_PG_GUARD)
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
        op.execute(_SQLITE_SEAL_ONLY)
        op.execute(_SQLITE_NO_DELETE)


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    unsealed = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM audit_events WHERE hash IS NULL")).scalar()
    if unsealed:
        raise RuntimeError(f"{unsealed} audit events are not sealed yet: run `flask audit seal` before downgrading")
    if postgres:
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_unsealed')
        batch_op.drop_constraint(batch_op.f('uq_audit_events_seq'), type_='unique')
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column('seq')
    if postgres:
        op.execute(_PG_OLD_GUARD)
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
        op.execute(_SQLITE_NO_UPDATE)
        op.execute(_SQLITE_NO_DELETE)
