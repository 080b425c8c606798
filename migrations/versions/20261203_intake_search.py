"""Trigram indexes for intake and case search on PostgreSQL: cases by number, title and description,
customers by name, contact and phone, equipment by serial number (ILIKE '%...%' uses them).

SQLite has no trigram indexes; its searches stay a plain LIKE over the rows, so nothing changes there.

Revision ID: intake_search
Revises: attachments (first written on users_and_tokens; re-chained as the branches were merged)
Created: 2026-12-03
"""

from alembic import op

revision = 'intake_search'
down_revision = 'attachments'
branch_labels = None
depends_on = None

# (table, column): each gets a GIN index with gin_trgm_ops, ix_<table>_<column>_trgm. One index per column:
# the planner ORs small indexes together far more cheaply than it scans one multi-column GIN index.
TRIGRAM_COLUMNS = [
    ('cases', 'number'), ('cases', 'title'), ('cases', 'description'),
    ('customers', 'name'), ('customers', 'contact_name'), ('customers', 'phone'),
    ('equipment', 'serial_number'),
]


def _on_postgresql() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def upgrade() -> None:
    if not _on_postgresql():
        return
    # The extension stays on downgrade: other objects of the database may use it by then.
    op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    for table, column in TRIGRAM_COLUMNS:
        op.create_index(f'ix_{table}_{column}_trgm', table, [column], unique=False, postgresql_using='gin',
                        postgresql_ops={column: 'gin_trgm_ops'})


def downgrade() -> None:
    if not _on_postgresql():
        return
    for table, column in reversed(TRIGRAM_COLUMNS):
        op.drop_index(f'ix_{table}_{column}_trgm', table_name=table)
