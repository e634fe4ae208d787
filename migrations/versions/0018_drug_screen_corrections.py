"""drug screen corrections

`drug_screens.entered_in_error_*`: a screen marked entered in error stays on record, marked (who,
when, why), and counts nowhere. The one-screen-per-collection-time rule becomes a partial unique
index over the screens that count, so the right result can be recorded at the same time.
`cm_kept_incentives`: what such a screen had earned in a CM program, kept in the ledger (it was
handed to the client).

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
    op.create_table('cm_kept_incentives',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('drug_screen_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('draws', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['drug_screen_id'], ['drug_screens.id'], name=op.f('fk_cm_kept_incentives_drug_screen_id_drug_screens'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['program_id'], ['cm_programs.id'], name=op.f('fk_cm_kept_incentives_program_id_cm_programs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cm_kept_incentives')),
    sa.UniqueConstraint('program_id', 'drug_screen_id', name=op.f('uq_cm_kept_incentives_program_id'))
    )
    with op.batch_alter_table('cm_kept_incentives', schema=None) as batch_op:
        batch_op.create_index('ix_cm_kept_incentives_drug_screen_id', ['drug_screen_id'], unique=False)

    with op.batch_alter_table('drug_screens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('entered_in_error_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('entered_in_error_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('entered_in_error_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_drug_screens_entered_in_error_by_id_users'), 'users', ['entered_in_error_by_id'], ['id'], ondelete='SET NULL')
        batch_op.drop_constraint(batch_op.f('uq_drug_screens_client_id'), type_='unique')
        batch_op.create_index('uq_drug_screens_client_id_collected_at', ['client_id', 'collected_at'], unique=True, sqlite_where=_COUNTED, postgresql_where=_COUNTED)


def downgrade():
    op.execute('DELETE FROM cm_kept_incentives')
    # Screens entered in error may share a collection time with their correction: they go first.
    op.execute('DELETE FROM drug_screens WHERE entered_in_error_at IS NOT NULL')
    with op.batch_alter_table('drug_screens', schema=None) as batch_op:
        batch_op.drop_index('uq_drug_screens_client_id_collected_at')
        batch_op.create_unique_constraint(batch_op.f('uq_drug_screens_client_id'), ['client_id', 'collected_at'])
        batch_op.drop_constraint(batch_op.f('fk_drug_screens_entered_in_error_by_id_users'), type_='foreignkey')
        batch_op.drop_column('entered_in_error_by_id')
        batch_op.drop_column('entered_in_error_reason')
        batch_op.drop_column('entered_in_error_at')

    with op.batch_alter_table('cm_kept_incentives', schema=None) as batch_op:
        batch_op.drop_index('ix_cm_kept_incentives_drug_screen_id')

    op.drop_table('cm_kept_incentives')
