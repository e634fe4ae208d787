"""staff email status `not_configured`: no mail server was set, so no email was sent

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 23:30:00

A staff notification's email used to be marked `sent` when MAIL_SERVER was unset and the message
was only logged. The worker now marks it `not_configured`; the CHECK constraint of the status
column learns the value. Downgrading turns such rows into `skipped` (not emailed) first.
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_BEFORE = ('pending', 'sending', 'sent', 'failed', 'skipped')
_AFTER = (*_BEFORE, 'not_configured')


def _status(values):
    return sa.Enum(*values, name='staff_email_status', native_enum=False, create_constraint=True, length=16)


def upgrade():
    with op.batch_alter_table('staff_notifications', schema=None) as batch_op:
        batch_op.alter_column(
            'email_status', existing_type=_status(_BEFORE), type_=_status(_AFTER), existing_nullable=False
        )


def downgrade():
    op.execute("UPDATE staff_notifications SET email_status = 'skipped' WHERE email_status = 'not_configured'")
    with op.batch_alter_table('staff_notifications', schema=None) as batch_op:
        batch_op.alter_column(
            'email_status', existing_type=_status(_AFTER), type_=_status(_BEFORE), existing_nullable=False
        )
