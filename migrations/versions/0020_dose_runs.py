"""dose_runs: each order's dose coverage merged into runs

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30 10:00:00

The MAT continuity report read every counted dose entry of the look-back (430,000 on the
100,000-client bench) to merge them; the runs table keeps them merged, maintained with the
dosing record (clinic.dosing.runs). Backfilled here by the same gaps-and-islands statement.
"""
from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


_BACKFILL = """
INSERT INTO dose_runs (medication_id, first_dose_id, covered_from, covered_until)
SELECT medication_id, MAX(CASE WHEN begins = 1 THEN id END), MIN(covered_from), MAX(covered_until)
FROM (
    SELECT id, medication_id, covered_from, covered_until, begins,
           SUM(begins) OVER (PARTITION BY medication_id ORDER BY covered_from, id) AS run_no
    FROM (
        SELECT id, medication_id, covered_from, covered_until,
               CASE WHEN prev_end IS NULL OR {days_after} > 1 THEN 1 ELSE 0 END AS begins
        FROM (
            SELECT id, medication_id, covered_from, covered_until,
                   MAX(covered_until) OVER (
                       PARTITION BY medication_id ORDER BY covered_from, id
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
                   ) AS prev_end
            FROM doses
            WHERE voided_at IS NULL
        ) AS ordered
    ) AS marked
) AS numbered
GROUP BY medication_id, run_no
"""

_DAYS_AFTER = {
    'postgresql': '(covered_from - prev_end)',
    'sqlite': 'CAST(julianday(covered_from) - julianday(prev_end) AS INTEGER)',
}


def upgrade():
    op.create_table('dose_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('medication_id', sa.Integer(), nullable=False),
    sa.Column('first_dose_id', sa.Integer(), nullable=False),
    sa.Column('covered_from', sa.Date(), nullable=False),
    sa.Column('covered_until', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['medication_id'], ['medications.id'], name=op.f('fk_dose_runs_medication_id_medications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dose_runs'))
    )
    with op.batch_alter_table('dose_runs', schema=None) as batch_op:
        batch_op.create_index('ix_dose_runs_medication_id_covered_from', ['medication_id', 'covered_from'], unique=False)
    op.execute(_BACKFILL.format(days_after=_DAYS_AFTER[op.get_bind().dialect.name]))


def downgrade():
    with op.batch_alter_table('dose_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_dose_runs_medication_id_covered_from')
    op.drop_table('dose_runs')
