"""The query views `items_v` and `annotations_v` as the newest migration leaves them.

`create` makes them from here instead of running the migrations (`migrate.create_schema`);
a test checks that both ways give the same views, to the character. `repo.query` builds
their bodies for any revision.
"""

from __future__ import annotations

ITEMS_V = """CREATE VIEW items_v AS
SELECT i.id AS item_id, i.subset, i.file_name, i.width, i.height, s.name AS source, i.coco_id,
       i.image_path, i.image_sha256
FROM items i
JOIN sources s ON s.id = i.source_id AND s.rev_to IS NULL
WHERE i.rev_to IS NULL"""

_ANNOTATIONS_V = """CREATE VIEW annotations_v AS
SELECT a.row_id, i.subset, i.file_name, s.name AS source, f.task, a.kind, l.name AS label,
       a.coco_id, a.category_id, {image_id} AS image_id, a.bbox_x, a.bbox_y, a.bbox_w, a.bbox_h,
       a.area, a.iscrowd, a.score, a.num_keypoints, a.caption
FROM annotations a
JOIN files f ON f.id = a.file_id AND f.rev_to IS NULL
JOIN items i ON i.id = a.item_id AND i.rev_to IS NULL
JOIN sources s ON s.id = f.source_id AND s.rev_to IS NULL{join}
LEFT JOIN categories c ON c.file_id = a.file_id AND c.coco_id = a.category_id AND c.rev_to IS NULL
LEFT JOIN labels l ON l.id = c.label_id AND l.rev_to IS NULL
WHERE a.rev_to IS NULL"""

# SQLite looks image_id up only for the queries that read it (migration 0007); PostgreSQL joins.
ANNOTATIONS_V = {
    "sqlite": _ANNOTATIONS_V.format(
        image_id="(SELECT fi.coco_id FROM file_images fi "
                 "WHERE fi.file_id = a.file_id AND fi.item_id = a.item_id AND fi.rev_to IS NULL)",
        join="",
    ),
    "postgresql": _ANNOTATIONS_V.format(
        image_id="fi.coco_id",
        join="\nLEFT JOIN file_images fi ON fi.file_id = a.file_id AND fi.item_id = a.item_id AND fi.rev_to IS NULL",
    ),
}


def create_statements(dialect: str) -> tuple[str, str]:
    return ITEMS_V, ANNOTATIONS_V[dialect]
