"""Labels in the tables: finding and creating them, and the rows a label change touches.

Labels are project-wide and unify categories by name; each category row points at its label.
A label change (see the actions in `repo.labels`) writes new versions of the rows it touches
(categories, and annotations whose category moves) or closes them, so it is a change like any
other. This module reads and writes those rows; the action decides what changes and computes
the new rows' content hashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, select

from repo.errors import NotFoundError
from repo.model.hashing import record_hash
from repo.store import schema
from repo.store.bulk import insert_skipping_conflicts
from repo.store.versions import VersionWriter

_labels, _categories, _annotations = schema.labels, schema.categories, schema.annotations


def live_label(connection: Connection, name: str) -> Row[Any] | None:
    query = select(_labels).where(_labels.c.name == name, _labels.c.rev_to.is_(None))
    return connection.execute(query).first()


def require_label(connection: Connection, name: str) -> Row[Any]:
    label = live_label(connection, name)
    if label is None:
        raise NotFoundError(f"no label named '{name}'")
    return label


def ensure_labels(versions: VersionWriter, names: Sequence[str]) -> dict[str, int]:
    """Label ids by name, creating the missing labels.

    `ON CONFLICT DO NOTHING` lets two concurrent imports that both bring a new label succeed,
    the second one using the first one's row.
    """
    wanted = sorted(set(names))
    connection = versions.connection
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        query = select(_labels.c.name, _labels.c.id).where(_labels.c.name.in_(chunk), _labels.c.rev_to.is_(None))
        existing = dict(connection.execute(query).all())
        missing = [name for name in chunk if name not in existing]
        if missing and versions.is_postgresql:
            versions.lock_labels()  # then look again: another import may have just created them
            existing = dict(connection.execute(query).all())
            missing = [name for name in chunk if name not in existing]
        if missing:
            ids = versions.allocate(_labels, len(missing))
            rows = [
                {"row_id": i, "id": i, "rev_from": versions.pending, "hash": label_hash(name), "name": name}
                for i, name in zip(ids, missing)
            ]
            statement = insert_skipping_conflicts(
                connection, _labels, index_elements=["name"], index_where=_labels.c.rev_to.is_(None)
            )
            connection.execute(statement, rows)
            existing = dict(connection.execute(query).all())
        found.update(existing)
    return found


def label_hash(name: str) -> bytes:
    """A label's record is its name."""
    return record_hash(name)


def categories_of(connection: Connection, label_id: int) -> list[Row[Any]]:
    """The working category rows that carry a label, in every file."""
    query = select(_categories).where(_categories.c.label_id == label_id, _categories.c.rev_to.is_(None))
    return list(connection.execute(query))


def annotations_of_category(connection: Connection, file_id: int, category_id: int) -> tuple[str, list[Row[Any]]]:
    """The task of a file and the working annotations of one of its categories, each with what
    its content hash depends on: the image's id in that file and the image's size there."""
    a, fi, i, f = _annotations, schema.file_images, schema.items, schema.files
    task = connection.execute(select(f.c.task).where(f.c.id == file_id, f.c.rev_to.is_(None))).scalar_one()
    query = (
        select(a, fi.c.coco_id.label("image_coco_id"), fi.c.record, i.c.height, i.c.width)
        .join(fi, and_(fi.c.file_id == a.c.file_id, fi.c.item_id == a.c.item_id, fi.c.rev_to.is_(None)))
        .join(i, and_(i.c.id == a.c.item_id, i.c.rev_to.is_(None)))
        .where(a.c.file_id == file_id, a.c.category_id == category_id, a.c.rev_to.is_(None))
    )
    return task, list(connection.execute(query))


def close_label(versions: VersionWriter, label: Row[Any]) -> None:
    versions.close_rows(_labels, [label.row_id])


def close_categories(versions: VersionWriter, categories: Sequence[Row[Any]]) -> None:
    versions.close_rows(_categories, [category.row_id for category in categories])


def close_annotations_of(versions: VersionWriter, category: Row[Any]) -> int:
    """Close the working annotations of a category row; returns how many."""
    return versions.close(
        _annotations, and_(_annotations.c.file_id == category.file_id, _annotations.c.category_id == category.coco_id)
    )
