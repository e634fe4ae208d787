"""drug screen corrections

`drug_screens.entered_in_error_*`: a screen marked entered in error stays on record, marked (who,
when, why), and counts nowhere. The one-screen-per-collection-time rule becomes a partial unique
index over the screens that count, so the right result can be recorded at the same time.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 08:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

_COUNTED = sa.text('entered_in_error_at IS NULL')


def upgrade():
    with op.batch_alter_table('drug_screens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('entered_in_error_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('entered_in_error_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('entered_in_error_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_drug_screens_entered_in_error_by_id_users'), 'users', ['entered_in_error_by_id'], ['id'], ondelete='SET NULL')
        batch_op.drop_constraint(batch_op.f('uq_drug_screens_client_id'), type_='unique')
        batch_op.create_index('uq_drug_screens_client_id_collected_at', ['client_id', 'collected_at'], unique=True, sqlite_where=_COUNTED, postgresql_where=_COUNTED)


def downgrade():
    # Screens entered in error may share a collection time with their correction: they go first.
    op.execute('DELETE FROM drug_screens WHERE entered_in_error_at IS NOT NULL')
    with op.batch_alter_table('drug_screens', schema=None) as batch_op:
        batch_op.drop_index('uq_drug_screens_client_id_collected_at')
        batch_op.create_unique_constraint(batch_op.f('uq_drug_screens_client_id'), ['client_id', 'collected_at'])
        batch_op.drop_constraint(batch_op.f('fk_drug_screens_entered_in_error_by_id_users'), type_='foreignkey')
        batch_op.drop_column('entered_in_error_by_id')
        batch_op.drop_column('entered_in_error_reason')
        batch_op.drop_column('entered_in_error_at')
