"""The project a database holds; annotations.num_flags becomes number_forms.

Revision ID: 0003
Revises: 0002

`project` has one row, written by `dsrepo create`: the project's name and folder, so that a
second `create` on the same database can say whose it is. Databases created before this
revision have no row (their project is then named by its schema only). The column rename is
a name only: it holds how each number field was written (integer or not, -0.0), not flags
of a count.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("directory", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute("ALTER TABLE annotations RENAME COLUMN num_flags TO number_forms")


def downgrade() -> None:
    op.execute("ALTER TABLE annotations RENAME COLUMN number_forms TO num_flags")
    op.drop_table("project")
