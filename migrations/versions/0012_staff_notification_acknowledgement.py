"""staff notifications are acknowledged: when, and the note the user wrote

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 09:00:00

A staff notification (a safety flag above all) stays in the user's list of alerts to act on until
they acknowledge it (`POST /staff-notifications/{id}/acknowledge`): `acknowledged_at` is when, and
`acknowledgement_note` what they wrote, if anything. Reading an alert is not acknowledging it.
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('staff_notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('acknowledgement_note', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('staff_notifications', schema=None) as batch_op:
        batch_op.drop_column('acknowledgement_note')
        batch_op.drop_column('acknowledged_at')
