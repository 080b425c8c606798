"""Sign-in: each user's session generation, which ends all their sessions when it is raised.

Revision ID: sign_in
Revises: users_and_tokens
Created: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa

revision = 'sign_in'
down_revision = 'users_and_tokens'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_generation', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_generation')
