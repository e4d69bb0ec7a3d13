"""Label changes on stored rows: rename, merge one label into another, delete.

Labels are project-wide and unify categories by name. A label change rewrites the rows it
touches as new versions (categories, and annotations whose category moves or goes), so it is
a change like any other: `status` shows it, `commit` records it, `checkout` undoes it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, and_, select

from repo.coco.writer import annotation_hash, category_object
from repo.errors import ConflictError, NotFoundError
from repo.model.hashing import record_hash
from repo.store import schema
from repo.store.versions import Stamp

_labels, _categories, _annotations = schema.labels, schema.categories, schema.annotations


def live_label(connection: Connection, name: str) -> Row[Any] | None:
    query = select(_labels).where(_labels.c.name == name, _labels.c.rev_to.is_(None))
    return connection.execute(query).first()


def require_label(connection: Connection, name: str) -> Row[Any]:
    label = live_label(connection, name)
    if label is None:
        raise NotFoundError(f"no label named '{name}'")
    return label


def _new_version(table: Any, row: Row[Any], **changes: Any) -> dict[str, Any]:
    """The values of a new version of `row` (the caller closes the old one)."""
    values = {c.name: getattr(row, c.name) for c in table.c if c.name not in ("row_id", "rev_from", "rev_to")}
    values.update(changes)
    return values


def _replace_categories(stamp: Stamp, rows: list[Row[Any]], **changes: Any) -> None:
    versions = []
    for row in rows:
        values = _new_version(_categories, row, **changes)
        values["hash"] = record_hash(category_object(values))
        versions.append(values)
    stamp.close_rows(_categories, [row.row_id for row in rows])
    stamp.insert_versions(_categories, versions)


def _label_categories(connection: Connection, label_id: int) -> list[Row[Any]]:
    query = select(_categories).where(_categories.c.label_id == label_id, _categories.c.rev_to.is_(None))
    return list(connection.execute(query))


def rename_label(stamp: Stamp, label: Row[Any], new_name: str) -> None:
    stamp.lock_labels()
    if live_label(stamp.connection, new_name) is not None:
        raise ConflictError(f"a label named '{new_name}' already exists; use `dsrepo labels merge {label.name} --into {new_name}`")
    _replace_categories(stamp, _label_categories(stamp.connection, label.id), name=new_name)
    label_version = _new_version(_labels, label, name=new_name, hash=record_hash(new_name))
    stamp.close_rows(_labels, [label.row_id])
    stamp.insert_versions(_labels, [label_version])


def merge_label(stamp: Stamp, label: Row[Any], target: Row[Any]) -> None:
    """Move everything of `label` to `target`; in a file that has both, annotations move to
    the target's category and the label's category goes."""
    connection = stamp.connection
    targets = {row.file_id: row for row in _label_categories(connection, target.id)}
    moved = []
    for category in _label_categories(connection, label.id):
        kept = targets.get(category.file_id)
        if kept is None:
            moved.append(category)
            continue
        _recategorize(stamp, category.file_id, category.coco_id, kept.coco_id)
        stamp.close_rows(_categories, [category.row_id])
    _replace_categories(stamp, moved, name=target.name, label_id=target.id)
    stamp.close_rows(_labels, [label.row_id])


def delete_label(stamp: Stamp, label: Row[Any]) -> int:
    """Close the label, its categories and their annotations; returns how many annotations."""
    removed = 0
    for category in _label_categories(stamp.connection, label.id):
        removed += stamp.close(
            _annotations, and_(_annotations.c.file_id == category.file_id, _annotations.c.category_id == category.coco_id)
        )
        stamp.close_rows(_categories, [category.row_id])
    stamp.close_rows(_labels, [label.row_id])
    return removed


def _recategorize(stamp: Stamp, file_id: int, old_id: int, new_id: int) -> None:
    a, fi, i, f = _annotations, schema.file_images, schema.items, schema.files
    task = stamp.connection.execute(select(f.c.task).where(f.c.id == file_id, f.c.rev_to.is_(None))).scalar_one()
    query = (
        select(a, fi.c.coco_id.label("image_coco_id"), fi.c.record, i.c.height, i.c.width)
        .join(fi, and_(fi.c.file_id == a.c.file_id, fi.c.item_id == a.c.item_id, fi.c.rev_to.is_(None)))
        .join(i, and_(i.c.id == a.c.item_id, i.c.rev_to.is_(None)))
        .where(a.c.file_id == file_id, a.c.category_id == old_id, a.c.rev_to.is_(None))
    )
    rows = stamp.connection.execute(query).all()
    versions = []
    for row in rows:
        size = row.record or {"height": row.height, "width": row.width}
        values = _new_version(a, row, category_id=new_id)
        values["hash"] = annotation_hash(values, task, row.image_coco_id, size["height"], size["width"])
        versions.append(values)
    stamp.close_rows(a, [row.row_id for row in rows])
    stamp.insert_versions(a, versions)
