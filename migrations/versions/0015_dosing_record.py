"""the OTP dosing record, take-home reviews

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 06:00:00

`doses` is the dispensing record of an opioid treatment program (21 CFR 1304.24): one row per
dose consumed at the program (`observed`) or take-home supply (`take_home`), with the lot number
and the dispenser's initials. `given_on` is the site's local day; `covered_from`..`covered_until`
the days the entry doses the client (missed doses, MAT continuity). A correction voids a row
(`voided_at`, `voided_by_id`, `void_reason`), never deletes it. A partial unique index allows
one full observed dose of an order per local day.

`take_home_reviews` keeps each clinician review of the take-home criteria of 42 CFR 8.12(i)(2).
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_ONE_FULL_OBSERVED = sa.text("kind = 'observed' AND NOT is_split AND voided_at IS NULL")


def upgrade():
    op.create_table('doses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('medication_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('observed', 'take_home', name='dose_kind', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('amount_mg', sa.Numeric(precision=10, scale=3), nullable=False),
    sa.Column('take_home_days', sa.Integer(), nullable=False),
    sa.Column('given_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('given_on', sa.Date(), nullable=False),
    sa.Column('covered_from', sa.Date(), nullable=False),
    sa.Column('covered_until', sa.Date(), nullable=False),
    sa.Column('is_split', sa.Boolean(), nullable=False),
    sa.Column('lot_number', sa.String(length=64), nullable=False),
    sa.Column('substance', sa.String(length=40), nullable=False),
    sa.Column('strength', sa.String(length=60), nullable=False),
    sa.Column('dosage_form', sa.String(length=60), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('dispenser_id', sa.Integer(), nullable=False),
    sa.Column('dispenser_initials', sa.String(length=8), nullable=False),
    sa.Column('voided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('voided_by_id', sa.Integer(), nullable=True),
    sa.Column('void_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_mg > 0', name=op.f('ck_doses_positive_amount')),
    sa.CheckConstraint("(kind = 'observed' AND take_home_days = 0) OR (kind = 'take_home' AND take_home_days >= 1)", name=op.f('ck_doses_take_home_days_by_kind')),
    sa.CheckConstraint('covered_until >= covered_from', name=op.f('ck_doses_covered_in_order')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_doses_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_doses_site_id_sites'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['medication_id'], ['medications.id'], name=op.f('fk_doses_medication_id_medications'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['dispenser_id'], ['users.id'], name=op.f('fk_doses_dispenser_id_users'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['voided_by_id'], ['users.id'], name=op.f('fk_doses_voided_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_doses'))
    )
    with op.batch_alter_table('doses', schema=None) as batch_op:
        batch_op.create_index('ix_doses_client_id_given_on', ['client_id', 'given_on'], unique=False)
        batch_op.create_index('ix_doses_site_id_given_on', ['site_id', 'given_on'], unique=False)
        batch_op.create_index('ix_doses_medication_id_given_on', ['medication_id', 'given_on'], unique=False)
        batch_op.create_index('uq_doses_one_full_observed_dose_per_day', ['medication_id', 'given_on'], unique=True, sqlite_where=_ONE_FULL_OBSERVED, postgresql_where=_ONE_FULL_OBSERVED)

    op.create_table('take_home_reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('episode_id', sa.Integer(), nullable=True),
    sa.Column('criteria', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_take_home_reviews_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_take_home_reviews_site_id_sites'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['episode_id'], ['episodes.id'], name=op.f('fk_take_home_reviews_episode_id_episodes'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_take_home_reviews_decided_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_take_home_reviews'))
    )
    with op.batch_alter_table('take_home_reviews', schema=None) as batch_op:
        batch_op.create_index('ix_take_home_reviews_client_id_decided_at', ['client_id', 'decided_at'], unique=False)


def downgrade():
    with op.batch_alter_table('take_home_reviews', schema=None) as batch_op:
        batch_op.drop_index('ix_take_home_reviews_client_id_decided_at')
    op.drop_table('take_home_reviews')
    with op.batch_alter_table('doses', schema=None) as batch_op:
        batch_op.drop_index('uq_doses_one_full_observed_dose_per_day', sqlite_where=_ONE_FULL_OBSERVED, postgresql_where=_ONE_FULL_OBSERVED)
        batch_op.drop_index('ix_doses_medication_id_given_on')
        batch_op.drop_index('ix_doses_site_id_given_on')
        batch_op.drop_index('ix_doses_client_id_given_on')
    op.drop_table('doses')
