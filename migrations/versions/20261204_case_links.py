"""Cases opened from other cases (an inspection's anomaly opens a fault case; an escalation), linked both
ways.

Revision ID: case_links
Revises: user_locale
Created: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = 'case_links'
down_revision = 'user_locale'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'case_links',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('from_case_id', sa.Integer(), nullable=False),
        sa.Column('to_case_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=30), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(['from_case_id'], ['cases.id'], name='fk_case_links_from_case_id_cases'),
        sa.ForeignKeyConstraint(['to_case_id'], ['cases.id'], name='fk_case_links_to_case_id_cases'),
        sa.PrimaryKeyConstraint('id', name='pk_case_links'),
    )
    op.create_index('ix_case_links_from_case_id', 'case_links', ['from_case_id'], unique=False)
    op.create_index('ix_case_links_to_case_id', 'case_links', ['to_case_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_case_links_to_case_id', table_name='case_links')
    op.drop_index('ix_case_links_from_case_id', table_name='case_links')
    op.drop_table('case_links')
