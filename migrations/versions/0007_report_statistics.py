"""report helpers: statistics on a drug screen's month, an index covering screen results

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 14:10:00

PostgreSQL only. The drug-screens report groups millions of result rows by the UTC month of
their screen. Without statistics on that expression the planner guesses hundreds of thousands of
groups and aggregates serially after gathering every row; with them it knows there are a few
dozen months and aggregates in parallel workers (docs/performance.md). SQLite has no use for it.

On both: an index of results by (screen, result, substance), so the contingency-management ledger
reads which target substances were negative in a screen from the index alone.
"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('drug_screen_results', schema=None) as batch_op:
        batch_op.create_index('ix_drug_screen_results_screen_id_result', ['screen_id', 'result', 'substance'], unique=False)
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE STATISTICS st_drug_screens_utc_month "
        "ON (date_trunc('month', collected_at AT TIME ZONE 'UTC')) FROM drug_screens"
    )
    op.execute("ANALYZE drug_screens")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS st_drug_screens_utc_month")
    with op.batch_alter_table('drug_screen_results', schema=None) as batch_op:
        batch_op.drop_index('ix_drug_screen_results_screen_id_result')
