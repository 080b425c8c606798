"""Operating data (plan 5.4): one row of daily readings per monitored piece of equipment and calendar day,
which the monthly inspection reviews.

Revision ID: operating_data
Revises: spare_parts
Created: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = 'operating_data'
down_revision = 'spare_parts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'readings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('equipment_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('input_voltage', sa.Double(), nullable=False),
        sa.Column('output_voltage', sa.Double(), nullable=False),
        sa.Column('load_percent', sa.Double(), nullable=False),
        sa.Column('battery_health_percent', sa.Double(), nullable=False),
        sa.Column('temperature_c', sa.Double(), nullable=False),
        sa.Column('alarm_codes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                  nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('received_by', sa.String(length=100), nullable=False),
        sa.Column('corrected_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('corrected_by', sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(['equipment_id'], ['equipment.id'], name='fk_readings_equipment_id_equipment'),
        sa.PrimaryKeyConstraint('id', name='pk_readings'),
        sa.UniqueConstraint('equipment_id', 'day', name='uq_readings_equipment_id_day'),
    )


def downgrade() -> None:
    op.drop_table('readings')
