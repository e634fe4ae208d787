"""drug screen corrections

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


def upgrade():
    pass


def downgrade():
    pass
