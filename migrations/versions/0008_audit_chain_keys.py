"""key the audit chain: each sealed entry records the id of the key that sealed it

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 10:00:00

From this revision on, entries are sealed with an HMAC-SHA-256 under AUDIT_CHAIN_KEY, a key kept
out of the database, and `key_id` names the key (clinic/audit/keys.py). Entries sealed before it
keep a null `key_id`: their hash is the plain SHA-256 it always was, and they still verify, as
the start of the chain. No row is rewritten. The append-only guard needs no change: it lets the
sealing update set `key_id` with `seq`, `prev_hash` and `hash`, once, and nothing after that.
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    # A nullable column without a default: no table rewrite, and the row triggers do not fire.
    op.add_column('audit_events', sa.Column('key_id', sa.String(length=16), nullable=True))


def downgrade():
    keyed = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM audit_events WHERE key_id IS NOT NULL")).scalar()
    if keyed:
        raise RuntimeError(
            f"{keyed} audit events are sealed with a key, which the previous version cannot verify "
            "(it would report them altered): keep this revision"
        )
    # SQLite (3.35+) drops the column in place, so the append-only triggers stay as they are.
    op.drop_column('audit_events', 'key_id')
