"""Trigram indexes for intake and case search on PostgreSQL: cases by number, title and description,
customers by name, contact and phone, equipment by serial number (ILIKE '%...%' uses them).

SQLite has no trigram indexes; its searches stay a plain LIKE over the rows, so nothing changes there.

Revision ID: intake_search
Revises: users_and_tokens
Created: 2026-12-03
"""

from alembic import op

revision = 'intake_search'
down_revision = 'users_and_tokens'
branch_labels = None
depends_on = None

# (index, table, columns): each a GIN index with gin_trgm_ops on every column.
TRIGRAM_INDEXES = [
    ('ix_cases_search_trgm', 'cases', ['number', 'title', 'description']),
    ('ix_customers_search_trgm', 'customers', ['name', 'contact_name', 'phone']),
    ('ix_equipment_serial_number_trgm', 'equipment', ['serial_number']),
]


def _on_postgresql() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def upgrade() -> None:
    if not _on_postgresql():
        return
    # The extension stays on downgrade: other objects of the database may use it by then.
    op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    for name, table, columns in TRIGRAM_INDEXES:
        op.create_index(name, table, columns, unique=False, postgresql_using='gin',
                        postgresql_ops={column: 'gin_trgm_ops' for column in columns})


def downgrade() -> None:
    if not _on_postgresql():
        return
    for name, table, _columns in reversed(TRIGRAM_INDEXES):
        op.drop_index(name, table_name=table)
