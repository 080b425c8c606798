"""Users choose the language of their pages: users.locale (en, zh; null until they choose).

Revision ID: user_locale
Revises: decision_tables
Created: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = 'user_locale'
down_revision = 'decision_tables'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('locale', sa.String(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('locale')
