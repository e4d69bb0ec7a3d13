"""Bulk-writing validated COCO files into the tables of one source.

The files of a source share its items: an image listed by `instances_val.json` and by
`captions_val.json` is one item of subset `val`, and each file remembers the id and, if it
differs, the record it gave that image. Rows are built as plain dicts and inserted in batches
with SQLAlchemy Core; nothing here creates an object per annotation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from repo.coco.reader import record_hash
from repo.coco.records import AnnotationRecord, ImageRecord, TaskFile
from repo.coco.writer import image_object
from repo.store import schema
from repo.store.schema import POSITION_STEP
from repo.store.versions import Stamp

ANNOTATION_FIELDS = (
    "kind", "coco_id", "category_id", "iscrowd", "score", "area", "bbox_x", "bbox_y", "bbox_w",
    "bbox_h", "num_flags", "polygons", "rle", "rle_form", "keypoints", "num_keypoints", "caption",
    "attributes", "extra", "hash",
)


@dataclass(frozen=True)
class ImageRef:
    """Where an item's image file was found, relative to the source's root."""

    path: str
    size: int
    sha256: str


@dataclass
class _Item:
    id: int
    record_hash: bytes


def ensure_labels(stamp: Stamp, names: Iterable[str]) -> dict[str, int]:
    """Label ids by name, creating the missing labels.

    Labels are shared by all sources; `ON CONFLICT DO NOTHING` lets two concurrent imports
    that both bring a new label succeed, the second one using the first one's row.
    """
    wanted = sorted(set(names))
    if not wanted:
        return {}
    table = schema.labels
    connection = stamp.connection
    dialect_insert = postgresql.insert if stamp.is_postgresql else sqlite.insert
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        ids = stamp.allocate(table, len(chunk))
        rows = [
            {"row_id": i, "id": i, "rev_from": stamp.pending, "hash": record_hash(name), "name": name}
            for i, name in zip(ids, chunk)
        ]
        statement = dialect_insert(table).on_conflict_do_nothing(
            index_elements=["name"], index_where=table.c.rev_to.is_(None)
        )
        connection.execute(statement, rows)
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        query = select(table.c.name, table.c.id).where(table.c.name.in_(chunk), table.c.rev_to.is_(None))
        found.update(connection.execute(query).all())
    return found


class SourceLoader:
    """Writes the files of one source, in one transaction."""

    def __init__(self, stamp: Stamp, source_id: int):
        self.stamp = stamp
        self.source_id = source_id
        self._items: dict[tuple[str, str], _Item] = {}

    def add_file(
        self, task_file: TaskFile, position: int, image_refs: Mapping[str, ImageRef] | None = None
    ) -> int:
        """Insert one file's rows; returns the file's id."""
        stamp = self.stamp
        header = {
            "layout": task_file.layout, "info": task_file.info, "licenses": task_file.licenses,
            "extra": task_file.extra,
        }
        [file_id] = stamp.insert(schema.files, [{
            "source_id": self.source_id, "task": task_file.task, "subset": task_file.subset,
            "name": task_file.name, "position": position, "hash": record_hash(header), **header,
        }])
        self._add_categories(file_id, task_file)
        item_ids = self._add_images(file_id, task_file, image_refs or {})
        self._add_annotations(file_id, task_file.annotations, item_ids)
        self._add_panoptic(file_id, task_file, item_ids)
        return file_id

    def _add_categories(self, file_id: int, task_file: TaskFile) -> None:
        label_ids = ensure_labels(self.stamp, (c["name"] for c in task_file.categories))
        self.stamp.insert(schema.categories, [
            {
                "file_id": file_id, "position": index * POSITION_STEP, "coco_id": c["coco_id"],
                "name": c["name"], "supercategory": c["supercategory"], "label_id": label_ids[c["name"]],
                "extra": c["extra"], "hash": c["hash"],
            }
            for index, c in enumerate(task_file.categories)
        ])

    def _add_images(
        self, file_id: int, task_file: TaskFile, image_refs: Mapping[str, ImageRef]
    ) -> dict[int, int]:
        """Items for the file's images (new or shared with earlier files); returns coco id -> item id."""
        subset = task_file.subset
        new_images = [
            image for image in task_file.images if (subset, image["file_name"]) not in self._items
        ]
        new_ids = self.stamp.insert(schema.items, [
            self._item_row(subset, image, image_refs.get(image["file_name"])) for image in new_images
        ])
        for image, item_id in zip(new_images, new_ids):
            self._items[(subset, image["file_name"])] = _Item(item_id, image["hash"])
        item_ids: dict[int, int] = {}
        rows = []
        for index, image in enumerate(task_file.images):
            item = self._items[(subset, image["file_name"])]
            item_ids[image["coco_id"]] = item.id
            rows.append({
                "file_id": file_id, "item_id": item.id, "position": index * POSITION_STEP,
                "coco_id": image["coco_id"], "hash": image["hash"],
                "record": None if image["hash"] == item.record_hash else _image_record(image),
            })
        self.stamp.insert(schema.file_images, rows)
        return item_ids

    def _item_row(self, subset: str, image: ImageRecord, ref: ImageRef | None) -> dict[str, Any]:
        return {
            "source_id": self.source_id, "subset": subset, "file_name": image["file_name"],
            "coco_id": image["coco_id"], "width": image["width"], "height": image["height"],
            "extra": image["extra"], "hash": image["hash"],
            "image_path": ref.path if ref else None,
            "image_size": ref.size if ref else None,
            "image_sha256": ref.sha256 if ref else None,
        }

    def _add_annotations(
        self, file_id: int, records: list[AnnotationRecord], item_ids: dict[int, int], start: int = 0
    ) -> None:
        rows = [
            _annotation_row(record, file_id, item_ids[record["image_id"]], (start + index) * POSITION_STEP)
            for index, record in enumerate(records)
        ]
        self.stamp.insert(schema.annotations, rows)

    def _add_panoptic(self, file_id: int, task_file: TaskFile, item_ids: dict[int, int]) -> None:
        if not task_file.panoptic:
            return
        self.stamp.insert(schema.panoptic_records, [
            {
                "file_id": file_id, "item_id": item_ids[record.image_id],
                "position": index * POSITION_STEP, "png_name": record.png_name,
                "extra": record.extra, "hash": record.hash,
            }
            for index, record in enumerate(task_file.panoptic)
        ])
        # Segments are annotations ordered by (record, place in segments_info).
        segments = [segment for record in task_file.panoptic for segment in record.segments]
        self._add_annotations(file_id, segments, item_ids)


def _image_record(image: ImageRecord) -> dict[str, Any]:
    return image_object(image["coco_id"], image["file_name"], image["width"], image["height"], image["extra"])


def _annotation_row(record: AnnotationRecord, file_id: int, item_id: int, position: int) -> dict[str, Any]:
    row = {name: record.get(name) for name in ANNOTATION_FIELDS}
    row["file_id"] = file_id
    row["item_id"] = item_id
    row["position"] = position
    return row
