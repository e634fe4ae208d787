"""safety alerts: the kinds overdose and missed_doses, and escalation

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 06:00:00

A safety alert (PHQ-9 item 9, an overdose, missed doses) is never dropped: every copy of one alert
shares `alert_key`; a copy sent because nobody acknowledged it in time is `escalated`; the first
copies carry `escalated_at`, claimed by one conditional UPDATE so an alert is escalated once. The
kind column's CHECK constraint is recreated with the two new kinds.
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

KIND_CHECK = 'ck_staff_notifications_staff_notification_kind'
OLD_KINDS = ('safety_flag', 'review_overdue', 'client_reply')
NEW_KINDS = OLD_KINDS + ('overdose', 'missed_doses')


def _kinds(values):
    return 'kind IN (' + ', '.join(f"'{value}'" for value in values) + ')'


def upgrade():
    with op.batch_alter_table('staff_notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('alert_key', sa.String(length=160), nullable=True))
        batch_op.add_column(sa.Column('escalated', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_staff_notifications_alert_key', ['alert_key'], unique=False)
        batch_op.drop_constraint(batch_op.f(KIND_CHECK), type_='check')
        batch_op.create_check_constraint(batch_op.f(KIND_CHECK), _kinds(NEW_KINDS))


def downgrade():
    op.execute(sa.text(
        "DELETE FROM staff_notifications WHERE kind IN ('overdose', 'missed_doses')"
    ))
    with op.batch_alter_table('staff_notifications', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f(KIND_CHECK), type_='check')
        batch_op.create_check_constraint(batch_op.f(KIND_CHECK), _kinds(OLD_KINDS))
        batch_op.drop_index('ix_staff_notifications_alert_key')
        batch_op.drop_column('escalated_at')
        batch_op.drop_column('escalated')
        batch_op.drop_column('alert_key')
