"""Timer lateness in 64 bits (a timer 25 days late overflowed 32), and the simulated clock's offset in
the database beside the history it dates (it lived only in Redis).

Revision ID: timer_lateness_and_clock
Revises: initial_schema
Created: 2026-12-02
"""

from alembic import op
import sqlalchemy as sa

revision = 'timer_lateness_and_clock'
down_revision = 'initial_schema'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.alter_column('fired_late_by_ms', existing_type=sa.Integer(), type_=sa.BigInteger(),
                              existing_nullable=True)

    op.create_table('simulated_clock',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('offset_seconds', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_simulated_clock'))
    )


def downgrade() -> None:
    op.drop_table('simulated_clock')
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.alter_column('fired_late_by_ms', existing_type=sa.BigInteger(), type_=sa.Integer(),
                              existing_nullable=True)
