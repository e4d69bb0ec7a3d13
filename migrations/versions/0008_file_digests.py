"""Remembered file digests: an update reads only the images and PNGs that changed.

Revision ID: 0008
Revises: 0007

`file_digests` holds, for each file an import or update hashed (images, panoptic PNGs,
annotation files), what `stat` said of it (device, inode, size, modification and change times
in nanoseconds) and its SHA-256: a file whose `stat` is the same is not read again (see
repo.store.file_digests). It is a cache outside versions; projects made before start empty.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "file_digests",
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("device", sa.BigInteger, nullable=False),
        sa.Column("inode", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("ctime_ns", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("file_digests")
