"""clinicians' working hours, late entries on appointments, repeat calls linked to a client

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 23:15:00

- `working_hours`: weekly stretches of a clinician's time at a site (none: Monday to Friday,
  09:00-17:00 in the site's zone), which `GET /availability` offers free slots in.
- `appointments.late_entry_*`: why, by whom and when an outcome was recorded after the
  appointment had ended.
- `intake_calls.linked_*`: the existing client a repeat call is attached to; a call is converted
  or linked, never both (CHECK).
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('working_hours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('start_time', sa.Time(), nullable=False),
    sa.Column('end_time', sa.Time(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('end_time > start_time', name=op.f('ck_working_hours_ends_after_start')),
    sa.CheckConstraint('weekday >= 0 AND weekday <= 6', name=op.f('ck_working_hours_weekday_monday_to_sunday')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_working_hours_site_id_sites'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_working_hours_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_working_hours'))
    )
    with op.batch_alter_table('working_hours', schema=None) as batch_op:
        batch_op.create_index('ix_working_hours_user_id_weekday', ['user_id', 'weekday'], unique=False)

    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('late_entry_reason', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('late_entry_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('late_entry_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_appointments_late_entry_by_id_users'), 'users', ['late_entry_by_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('intake_calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('linked_client_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('linked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('linked_by_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_intake_calls_linked_client_id'), ['linked_client_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_intake_calls_linked_client_id_clients'), 'clients', ['linked_client_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_intake_calls_linked_by_id_users'), 'users', ['linked_by_id'], ['id'], ondelete='SET NULL')
        batch_op.create_check_constraint(
            batch_op.f('ck_intake_calls_converted_or_linked'), 'client_id IS NULL OR linked_client_id IS NULL'
        )


def downgrade():
    with op.batch_alter_table('intake_calls', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_intake_calls_converted_or_linked'), type_='check')
        batch_op.drop_constraint(batch_op.f('fk_intake_calls_linked_by_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_intake_calls_linked_client_id_clients'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_intake_calls_linked_client_id'))
        batch_op.drop_column('linked_by_id')
        batch_op.drop_column('linked_at')
        batch_op.drop_column('linked_client_id')

    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_appointments_late_entry_by_id_users'), type_='foreignkey')
        batch_op.drop_column('late_entry_at')
        batch_op.drop_column('late_entry_by_id')
        batch_op.drop_column('late_entry_reason')

    with op.batch_alter_table('working_hours', schema=None) as batch_op:
        batch_op.drop_index('ix_working_hours_user_id_weekday')

    op.drop_table('working_hours')
