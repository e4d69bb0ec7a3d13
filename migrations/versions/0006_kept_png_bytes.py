"""Kept panoptic PNGs and annotation file digests: exports and updates skip what did not change.

Revision ID: 0006
Revises: 0005

`panoptic_records.png_sha256` names the imported PNG, whose bytes are kept in the new table
`panoptic_pngs` (content-addressed and append-only, like `blobs`, which holds image files), and
`png_segments_hash` is the digest of the segments (id, mask) it paints: an export whose segments
have that digest writes those bytes instead of painting and encoding the PNG again.
`files.content_sha256` is the digest of the annotation file's bytes as last read: `update` does
not read a file whose bytes are the same. Projects made before have neither (null): their PNGs
are painted and their files read, as before, until an update fills them in.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = (
    ("panoptic_records", "png_sha256", sa.String(64)),
    ("panoptic_records", "png_segments_hash", sa.LargeBinary(16)),
    ("files", "content_sha256", sa.String(64)),
)


def upgrade() -> None:
    op.create_table(
        "panoptic_pngs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    for table, name, column_type in COLUMNS:
        op.add_column(table, sa.Column(name, column_type, nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35): a batch copy of the table would lose its partial indexes.
    for table, name, _ in reversed(COLUMNS):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {name}")
    op.drop_table("panoptic_pngs")
