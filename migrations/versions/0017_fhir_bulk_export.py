"""FHIR bulk export jobs

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 08:30:00

`fhir_exports`: one row per bulk `$export` an administrator asked for (docs/fhir.md "Bulk
export"): its random id (the name in its URLs), the scope (site, resource types, `_since`), its
status, the files the worker wrote and when they expire.
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('fhir_exports',
    sa.Column('id', sa.String(length=43), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('types', sa.JSON(), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('request_url', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('accepted', 'running', 'completed', 'failed', 'cancelled', name='fhir_export_status', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('transaction_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resource_count', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('files', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('fk_fhir_exports_requested_by_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_fhir_exports_site_id_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fhir_exports'))
    )
    with op.batch_alter_table('fhir_exports', schema=None) as batch_op:
        batch_op.create_index('ix_fhir_exports_expires_at', ['expires_at'], unique=False)
        batch_op.create_index('ix_fhir_exports_requested_by_id', ['requested_by_id'], unique=False)


def downgrade():
    with op.batch_alter_table('fhir_exports', schema=None) as batch_op:
        batch_op.drop_index('ix_fhir_exports_requested_by_id')
        batch_op.drop_index('ix_fhir_exports_expires_at')

    op.drop_table('fhir_exports')
