"""overdose prevention: naloxone dispenses, overdose events

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 06:00:00

`naloxone_dispenses`: naloxone handed to a client (formulation, quantity, whether overdose
education was given). `overdose_events`: an overdose reported about a client, fatal or not, from
whatever source; a fatal one records the clinician's confirmation of the death and the episode
it discharged with TEDS reason 6.
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('naloxone_dispenses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('dispensed_on', sa.Date(), nullable=False),
    sa.Column('formulation', sa.Enum('nasal_4mg', 'nasal_8mg', 'im_0_4mg', 'other', name='naloxone_formulation', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('education_given', sa.Boolean(), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('quantity >= 1', name=op.f('ck_naloxone_dispenses_quantity_positive')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_naloxone_dispenses_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_naloxone_dispenses_recorded_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_naloxone_dispenses_site_id_sites'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_naloxone_dispenses'))
    )
    with op.batch_alter_table('naloxone_dispenses', schema=None) as batch_op:
        batch_op.create_index('ix_naloxone_dispenses_client_id_dispensed_on', ['client_id', 'dispensed_on'], unique=False)
        batch_op.create_index('ix_naloxone_dispenses_site_id_dispensed_on', ['site_id', 'dispensed_on'], unique=False)

    op.create_table('overdose_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('occurred_on', sa.Date(), nullable=False),
    sa.Column('fatal', sa.Boolean(), nullable=False),
    sa.Column('naloxone_used', sa.Boolean(), nullable=True),
    sa.Column('substances', sa.JSON(), nullable=False),
    sa.Column('setting', sa.String(length=120), nullable=True),
    sa.Column('source', sa.Enum('client_report', 'ed_notice', 'family', 'other', name='overdose_source', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('death_confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('death_confirmed_by_id', sa.Integer(), nullable=True),
    sa.Column('discharged_episode_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_overdose_events_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['death_confirmed_by_id'], ['users.id'], name=op.f('fk_overdose_events_death_confirmed_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['discharged_episode_id'], ['episodes.id'], name=op.f('fk_overdose_events_discharged_episode_id_episodes'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_overdose_events_recorded_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_overdose_events_site_id_sites'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_overdose_events'))
    )
    with op.batch_alter_table('overdose_events', schema=None) as batch_op:
        batch_op.create_index('ix_overdose_events_client_id_occurred_on', ['client_id', 'occurred_on'], unique=False)
        batch_op.create_index('ix_overdose_events_site_id_occurred_on', ['site_id', 'occurred_on'], unique=False)


def downgrade():
    with op.batch_alter_table('overdose_events', schema=None) as batch_op:
        batch_op.drop_index('ix_overdose_events_site_id_occurred_on')
        batch_op.drop_index('ix_overdose_events_client_id_occurred_on')

    op.drop_table('overdose_events')
    with op.batch_alter_table('naloxone_dispenses', schema=None) as batch_op:
        batch_op.drop_index('ix_naloxone_dispenses_site_id_dispensed_on')
        batch_op.drop_index('ix_naloxone_dispenses_client_id_dispensed_on')

    op.drop_table('naloxone_dispenses')
