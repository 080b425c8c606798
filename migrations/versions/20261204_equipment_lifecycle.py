"""Equipment lifecycle (issue 8): a unit is in service or retired, a retired unit names the unit that
replaced it, and every change of a unit's or a customer's file is an append-only event.

Revision ID: equipment_lifecycle
Revises: case_links
Created: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = 'equipment_lifecycle'
down_revision = 'case_links'
branch_labels = None
depends_on = None

JSON_DATA = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('equipment') as batch:
        batch.add_column(sa.Column('status', sa.String(length=20), nullable=False, server_default='in_service'))
        batch.add_column(sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('replaced_by_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f('fk_equipment_replaced_by_id_equipment'), 'equipment', ['replaced_by_id'], ['id'])
        batch.create_unique_constraint(op.f('uq_equipment_replaced_by_id'), ['replaced_by_id'])
        batch.create_check_constraint(op.f('ck_equipment_status_known'), "status IN ('in_service', 'retired')")
        batch.create_check_constraint(op.f('ck_equipment_retired_at_with_status'),
                                      "(status = 'retired') = (retired_at IS NOT NULL)")
    op.create_table('equipment_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('equipment_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=50), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('payload', JSON_DATA, nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_equipment_events_case_id_cases')),
    sa.ForeignKeyConstraint(['equipment_id'], ['equipment.id'], name=op.f('fk_equipment_events_equipment_id_equipment')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_equipment_events'))
    )
    with op.batch_alter_table('equipment_events') as batch:
        batch.create_index(batch.f('ix_equipment_events_case_id'), ['case_id'], unique=False)
        batch.create_index(batch.f('ix_equipment_events_equipment_id'), ['equipment_id'], unique=False)
    op.create_table('customer_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=50), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('payload', JSON_DATA, nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_events_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_events'))
    )
    with op.batch_alter_table('customer_events') as batch:
        batch.create_index(batch.f('ix_customer_events_customer_id'), ['customer_id'], unique=False)


def downgrade() -> None:
    op.drop_table('customer_events')
    op.drop_table('equipment_events')
    with op.batch_alter_table('equipment') as batch:
        batch.drop_constraint(op.f('ck_equipment_retired_at_with_status'), type_='check')
        batch.drop_constraint(op.f('ck_equipment_status_known'), type_='check')
        batch.drop_constraint(op.f('uq_equipment_replaced_by_id'), type_='unique')
        batch.drop_constraint(op.f('fk_equipment_replaced_by_id_equipment'), type_='foreignkey')
        batch.drop_column('replaced_by_id')
        batch.drop_column('retired_at')
        batch.drop_column('status')
