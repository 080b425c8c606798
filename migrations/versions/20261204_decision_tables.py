"""Process versions keep the DMN decision tables they run with: {decision id: DMN XML as deployed}.

Nothing to backfill: no version deployed before this ran a decision table, so every existing row gets {}.

Revision ID: decision_tables
Revises: operating_data
Created: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = 'decision_tables'
down_revision = 'operating_data'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('process_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('decisions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()),
                                                                          'postgresql'),
                                      server_default='{}', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('process_versions', schema=None) as batch_op:
        batch_op.drop_column('decisions')
