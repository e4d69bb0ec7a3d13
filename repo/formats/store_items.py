"""The project, as of an export's snapshot, as the `ExportItem`s the VOC and YOLO writers take.

One ExportItem per image: the items of every source that share a subset and file name are one
image, their annotations together. An image's regions come from one kind of ground truth, so
that a COCO dataset holding the same objects twice (panoptic segments, and instances for its
things; person keypoints, and instances for the same persons) gives each object once: the
first of these task groups in which the image has annotations supplies them:

    panoptic  >  instances and stuff  >  person_keypoints

Captions and image labels carry no region; they are passed on and the writers count them as
left out. `--where` keeps the annotations it selected (images are all written).

Items and annotations stream from two cursors in the same order and are merged here, so
memory holds one image at a time. An image's file is the copy stored in the database, else
the file in its source's folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, and_, select

from repo.formats.exportable import ExportAnnotation, ExportItem
from repo.formats.registry import ExportContext
from repo.query import annotations_view
from repo.store import fetch, schema
from repo.store.blobs import blob_data
from repo.store.versions import Snapshot

REGION_TASKS = (("panoptic",), ("instances", "stuff"), ("person_keypoints",))
_REGIONS = frozenset(task for group in REGION_TASKS for task in group)


def export_labels(connection: Connection, snapshot: Snapshot) -> list[str]:
    """The project's labels in category order: files in source and file order, each file's
    categories in its order, a label at its first appearance."""
    c, f, lb = schema.categories, schema.files, schema.labels
    query = (
        select(lb.c.name)
        .select_from(c)
        .join(f, and_(f.c.id == c.c.file_id, snapshot.visible(f)))
        .join(lb, and_(lb.c.id == c.c.label_id, snapshot.visible(lb)))
        .where(snapshot.visible(c))
        .order_by(f.c.source_id, f.c.position, f.c.id, c.c.position)
    )
    return list(dict.fromkeys(name for (name,) in connection.execute(query)))


def export_items(context: ExportContext, *, with_images: bool) -> Iterator[ExportItem]:
    """The images of the context's snapshot with their annotations; `with_images` attaches
    each image's file (its stored bytes, or its path on disk)."""
    connection, snapshot = context.connection, context.snapshot
    i, a, fi = schema.items, schema.annotations, schema.files
    roots = {row.id: row.path for row in fetch.source_rows(connection, snapshot)}
    item_query = (
        select(
            i.c.id, i.c.source_id, i.c.subset, i.c.file_name, i.c.width, i.c.height, i.c.image_path, i.c.image_sha256
        )
        .where(snapshot.visible(i), i.c.source_id.in_(list(roots)))
        .order_by(i.c.subset, i.c.file_name, i.c.id)
    )
    annotation_query = (
        annotations_view(snapshot)
        .add_columns(a.c.polygons, a.c.rle)
        .order_by(i.c.subset, i.c.file_name, a.c.item_id, fi.c.position, a.c.file_id, a.c.position)
    )
    items = _stream(connection, item_query)
    annotations = _stream(connection, annotation_query)
    pending = next(annotations, None)
    current: list[Row[Any]] = []  # the rows of one image (one per source that has it)
    rows: list[Row[Any]] = []  # its annotations
    for row in items:
        key = (row.subset, row.file_name)
        if current and (current[0].subset, current[0].file_name) != key:
            yield _item(connection, current, rows, roots, with_images)
            current = []
        if not current:
            rows = []
            while pending is not None and (pending.subset, pending.file_name) == key:
                if context.selected is None or pending.row_id in context.selected:
                    rows.append(pending)
                pending = next(annotations, None)
        current.append(row)
    if current:
        yield _item(connection, current, rows, roots, with_images)


def _stream(connection: Connection, query: Any) -> Iterator[Row[Any]]:
    return iter(connection.execute(query, execution_options={"stream_results": True, "yield_per": fetch.STREAM_BATCH}))


def _item(
    connection: Connection,
    sources: list[Row[Any]],
    rows: list[Row[Any]],
    roots: dict[int, str | None],
    with_images: bool,
) -> ExportItem:
    first = sources[0]
    tasks = {row.task for row in rows}
    group = next((g for g in REGION_TASKS if tasks & set(g)), ())
    kept = [row for row in rows if row.task in group or row.task not in _REGIONS]
    return ExportItem(
        first.subset,
        first.file_name,
        first.width,
        first.height,
        tuple(_annotation(row) for row in kept),
        _image(connection, sources, roots) if with_images else None,
    )


def _annotation(row: Row[Any]) -> ExportAnnotation:
    box = (row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h)
    return ExportAnnotation(
        row.kind,
        row.label,
        box if None not in box else None,
        bool(row.iscrowd),
        row.polygons,
        bytes(row.rle) if row.rle is not None else None,
    )


def _image(connection: Connection, sources: list[Row[Any]], roots: dict[int, str | None]) -> bytes | Path | None:
    """The image file of the first source that has one: stored bytes, else a file on disk."""
    for row in sources:
        if row.image_sha256 is not None:
            data = blob_data(connection, row.image_sha256)
            if data is not None:
                return data
        if row.image_path:
            path = Path(roots.get(row.source_id) or "", row.image_path)
            if path.is_file():
                return path
    return None
