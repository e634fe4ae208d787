"""doses: an index for the lot in use at the dosing window

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 09:10:00

The dosing window offers the lot last recorded at the site for the substance of the row being
worked. Through the (site, day) index alone, a substance the site rarely gives (oral naltrexone at
an OTP) read a month of the site's doses to find none; (site, substance, day) finds it at once.
"""
from alembic import op


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_doses_site_id_substance_given_on', 'doses', ['site_id', 'substance', 'given_on'], unique=False)


def downgrade():
    op.drop_index('ix_doses_site_id_substance_given_on', table_name='doses')
