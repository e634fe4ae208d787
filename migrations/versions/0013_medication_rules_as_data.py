"""medication rules as data: overrides, scheduled changes, entered-in-error history

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 06:00:00

`medication_overrides`: one row per safety rule a clinician overrode on an order (the rule's code,
the reason, who and when). `medications.last_injection_on`: the latest naltrexone XR injection,
from which its 28-day coverage runs. `medication_dose_changes.entered_in_error_*`: an entry of the
dose history marked entered in error stays in the history and no longer counts.
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('medication_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('medication_id', sa.Integer(), nullable=False),
    sa.Column('rule', sa.Enum('methadone_requires_otp', 'induction_requires_cows', 'dose_above_limit', 'methadone_first_dose', 'agonist_antagonist_conflict', 'naltrexone_washout', 'duplicate_agonist', name='medication_override_rule', native_enum=False, create_constraint=True, length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('by_user_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['by_user_id'], ['users.id'], name=op.f('fk_medication_overrides_by_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['medication_id'], ['medications.id'], name=op.f('fk_medication_overrides_medication_id_medications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_medication_overrides'))
    )
    with op.batch_alter_table('medication_overrides', schema=None) as batch_op:
        batch_op.create_index('ix_medication_overrides_medication_id', ['medication_id'], unique=False)

    with op.batch_alter_table('medications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_injection_on', sa.Date(), nullable=True))

    with op.batch_alter_table('medication_dose_changes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('entered_in_error_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('entered_in_error_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('entered_in_error_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_medication_dose_changes_entered_in_error_by_id_users'), 'users', ['entered_in_error_by_id'], ['id'], ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('medication_dose_changes', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_medication_dose_changes_entered_in_error_by_id_users'), type_='foreignkey')
        batch_op.drop_column('entered_in_error_by_id')
        batch_op.drop_column('entered_in_error_reason')
        batch_op.drop_column('entered_in_error_at')

    with op.batch_alter_table('medications', schema=None) as batch_op:
        batch_op.drop_column('last_injection_on')

    with op.batch_alter_table('medication_overrides', schema=None) as batch_op:
        batch_op.drop_index('ix_medication_overrides_medication_id')

    op.drop_table('medication_overrides')
