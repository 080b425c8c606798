"""Work items keep every candidate group: the second and further roles of a task that several roles may work
(the first stays in work_items.role, so the queues of single-role tasks keep their index).

Nothing to backfill: until now only the first group was kept, and it is in work_items.role already.

Revision ID: work_item_roles
Revises: intake_search
Created: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = 'work_item_roles'
down_revision = 'intake_search'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'work_item_roles',
        sa.Column('work_item_id', sa.Integer(), nullable=False),
        sa.Column('role', sa.String(length=50), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], name='fk_work_item_roles_work_item_id_work_items',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('work_item_id', 'role', name='pk_work_item_roles'),
    )
    op.create_index('ix_work_item_roles_role_work_item_id', 'work_item_roles', ['role', 'work_item_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_work_item_roles_role_work_item_id', table_name='work_item_roles')
    op.drop_table('work_item_roles')
