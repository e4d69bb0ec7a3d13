"""Reader role: the PostgreSQL role that SQL written by users (query, --where) runs as.

Revision ID: 0004
Revises: 0003

See `repo.store.readers`. Only on PostgreSQL, and only when the migrating role can create
roles: on SQLite, or for a plain role that owns its database, there is nothing to make (such
a role has no server powers to drop); `dsrepo upgrade` as a role that can create roles makes
the reader later. Every `dsrepo upgrade` refreshes its grants as well.
"""
from __future__ import annotations

from alembic import op

from repo.store.readers import drop_reader, ensure_reader

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ensure_reader(op.get_bind())


def downgrade() -> None:
    drop_reader(op.get_bind())
