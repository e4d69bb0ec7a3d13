"""Remembered window digests: an update of a big annotation file reads only the windows that
changed.

Revision ID: 0010
Revises: 0009

`window_digests` holds, for each annotation file read in windows, by the SHA-256 of its bytes,
the digest and number of elements of each window of its `annotations` array, and at place -1
the digest of every other byte (see repo.model.windows). It is a cache outside versions;
projects made before start empty, and their files' next update reads them whole once.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "window_digests",
        sa.Column("file_sha256", sa.String(64), primary_key=True),
        sa.Column("place", sa.Integer, primary_key=True),
        sa.Column("elements", sa.Integer, nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("window_digests")
