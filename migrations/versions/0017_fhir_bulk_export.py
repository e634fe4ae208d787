"""FHIR bulk export jobs

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 08:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
