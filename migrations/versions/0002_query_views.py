"""Query views: items_v and annotations_v over the working state.

Revision ID: 0002
Revises: 0001

Their columns are part of dsrepo's documented interface (README, "SQL queries"); the same
bodies are built for any revision by `repo.query`, and a test checks the two agree.
"""
from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ITEMS_V = """
CREATE VIEW items_v AS
SELECT i.id AS item_id, i.subset, i.file_name, i.width, i.height, s.name AS source, i.coco_id,
       i.image_path, i.image_sha256
FROM items i
JOIN sources s ON s.id = i.source_id AND s.rev_to IS NULL
WHERE i.rev_to IS NULL
"""

ANNOTATIONS_V = """
CREATE VIEW annotations_v AS
SELECT a.row_id, i.subset, i.file_name, s.name AS source, f.task, a.kind, l.name AS label,
       a.coco_id, a.category_id, fi.coco_id AS image_id, a.bbox_x, a.bbox_y, a.bbox_w, a.bbox_h,
       a.area, a.iscrowd, a.score, a.num_keypoints, a.caption
FROM annotations a
JOIN files f ON f.id = a.file_id AND f.rev_to IS NULL
JOIN items i ON i.id = a.item_id AND i.rev_to IS NULL
JOIN sources s ON s.id = f.source_id AND s.rev_to IS NULL
LEFT JOIN file_images fi ON fi.file_id = a.file_id AND fi.item_id = a.item_id AND fi.rev_to IS NULL
LEFT JOIN categories c ON c.file_id = a.file_id AND c.coco_id = a.category_id AND c.rev_to IS NULL
LEFT JOIN labels l ON l.id = c.label_id AND l.rev_to IS NULL
WHERE a.rev_to IS NULL
"""


def upgrade() -> None:
    op.execute(ITEMS_V)
    op.execute(ANNOTATIONS_V)


def downgrade() -> None:
    op.execute("DROP VIEW annotations_v")
    op.execute("DROP VIEW items_v")
