"""`diff --details`: which items, annotations and labels changed between two states, one by one.

`history.diff_revisions` counts; this module names. Records are paired by lineage (a record
keeps its id across versions), so an annotation whose box moved is one "changed" annotation,
not a removal and an addition. A label rename is reported once, as a rename, not as a change
of every annotation that carries the label: an annotation changes only when its own record
(or its place in its file, or the label it points to) does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, Select, and_, select

from repo.project import Project
from repo.store import revisions, schema
from repo.store.versions import Snapshot

# Fields of an annotation compared one by one; big ones (geometry) are named, not shown.
SHOWN_FIELDS = ("label", "coco_id", "bbox", "area", "iscrowd", "score", "num_keypoints", "caption")
NAMED_FIELDS = ("polygons", "rle", "keypoints", "attributes", "extra", "position")
ITEM_FIELDS = ("coco_id", "width", "height", "extra", "image_path", "image_sha256")


@dataclass(frozen=True)
class AnnotationChange:
    """One annotation (or panoptic segment) added, removed or changed; `label` is its label
    after the change (before it, when removed); `before`/`after` hold the shown fields that
    differ, `fields` names every field that differs."""

    change: str  # added | removed | changed
    source: str
    subset: str
    file_name: str
    task: str
    kind: str
    id: int | None  # the annotation's COCO id (a segment's id for panoptic)
    label: str | None
    fields: tuple[str, ...] = ()
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemChange:
    """One image of a source added, removed or changed (size, id, image file, extra fields)."""

    change: str
    source: str
    subset: str
    file_name: str
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelRename:
    """A label (the same lineage) whose name differs between the two states."""

    old: str
    new: str


@dataclass
class DiffDetails:
    """What changed from `before` to `after` (revision references; None: the working state)."""

    before: str
    after: str | None
    label_renames: list[LabelRename]
    items: list[ItemChange]
    annotations: list[AnnotationChange]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def diff_details(project: Project, rev_a: str = "HEAD", rev_b: str | None = None) -> DiffDetails:
    """Items, annotations and label names that differ from `rev_a` to `rev_b` (None: the
    working state), each named; see the module docstring for how records are paired."""
    with project.reading() as connection:
        before = revisions.snapshot(connection, rev_a)
        after = revisions.snapshot(connection, rev_b)
        return DiffDetails(
            rev_a, rev_b, _label_renames(connection, before, after), _item_changes(connection, before, after),
            _annotation_changes(connection, before, after),
        )


def _label_renames(connection: Connection, before: Snapshot, after: Snapshot) -> list[LabelRename]:
    lb = schema.labels
    old = dict(connection.execute(select(lb.c.id, lb.c.name).where(before.visible(lb))).all())
    new = dict(connection.execute(select(lb.c.id, lb.c.name).where(after.visible(lb))).all())
    renames = [LabelRename(old[id_], new[id_]) for id_ in old.keys() & new.keys() if old[id_] != new[id_]]
    return sorted(renames, key=lambda rename: rename.old)


def _items(snapshot: Snapshot) -> Select[Any]:
    i, s = schema.items, schema.sources
    return (
        select(i, s.c.name.label("source"))
        .join(s, and_(s.c.id == i.c.source_id, snapshot.visible(s)))
        .where(snapshot.visible(i))
    )


def _annotations(snapshot: Snapshot) -> Select[Any]:
    a, f, i, s = schema.annotations, schema.files, schema.items, schema.sources
    c, lb = schema.categories, schema.labels
    return (
        select(
            a, i.c.subset, i.c.file_name, s.c.name.label("source"), f.c.task,
            lb.c.id.label("label_id"), lb.c.name.label("label"),
        )
        .join(f, and_(f.c.id == a.c.file_id, snapshot.visible(f)))
        .join(i, and_(i.c.id == a.c.item_id, snapshot.visible(i)))
        .join(s, and_(s.c.id == f.c.source_id, snapshot.visible(s)))
        .outerjoin(c, and_(c.c.file_id == a.c.file_id, c.c.coco_id == a.c.category_id, snapshot.visible(c)))
        .outerjoin(lb, and_(lb.c.id == c.c.label_id, snapshot.visible(lb)))
        .where(snapshot.visible(a))
    )


def _paired(
    connection: Connection, old_query: Select[Any], new_query: Select[Any], differs: Any
) -> tuple[list[Any], list[Any], list[tuple[Any, Any]]]:
    """Rows only in `new_query` (added), only in `old_query` (removed), and pairs of the same
    lineage for which `differs(old, new)` (an SQL condition over the two subqueries) holds."""
    old, new = old_query.subquery("old"), new_query.subquery("new")
    added = connection.execute(
        select(new).select_from(new.outerjoin(old, old.c.id == new.c.id)).where(old.c.id.is_(None))
    ).all()
    removed = connection.execute(
        select(old).select_from(old.outerjoin(new, new.c.id == old.c.id)).where(new.c.id.is_(None))
    ).all()
    width = len(old.c)
    changed = [
        (row[:width], row[width:])
        for row in connection.execute(
            select(old, new).select_from(old.join(new, old.c.id == new.c.id)).where(differs(old, new))
        ).all()
    ]
    names = list(old.c.keys())
    return added, removed, [(_row(names, a), _row(names, b)) for a, b in changed]


class _Row(dict[str, Any]):
    """A result row as attributes (the pairs of `_paired` are plain tuples split in two)."""

    __getattr__ = dict.__getitem__


def _row(names: list[str], values: Any) -> _Row:
    return _Row(zip(names, values))


def _item_changes(connection: Connection, before: Snapshot, after: Snapshot) -> list[ItemChange]:
    added, removed, changed = _paired(
        connection, _items(before), _items(after),
        lambda old, new: (old.c.hash != new.c.hash) | old.c.image_sha256.is_distinct_from(new.c.image_sha256),
    )
    found = [ItemChange("added", row.source, row.subset, row.file_name) for row in added]
    found += [ItemChange("removed", row.source, row.subset, row.file_name) for row in removed]
    for old, new in changed:
        fields = tuple(name for name in ITEM_FIELDS if old[name] != new[name])
        found.append(ItemChange("changed", new.source, new.subset, new.file_name, fields))
    return sorted(found, key=lambda change: (change.source, change.subset, change.file_name, change.change))


def _annotation_changes(connection: Connection, before: Snapshot, after: Snapshot) -> list[AnnotationChange]:
    added, removed, changed = _paired(
        connection, _annotations(before), _annotations(after),
        lambda old, new: (
            (old.c.hash != new.c.hash) | (old.c.position != new.c.position)
            | old.c.label_id.is_distinct_from(new.c.label_id)
        ),
    )
    found = [_annotation("added", row) for row in added]
    found += [_annotation("removed", row) for row in removed]
    for old, new in changed:
        old_values, new_values = _values(old), _values(new)
        fields = tuple(
            name for name in old_values
            if (old.label_id != new.label_id if name == "label" else old_values[name] != new_values[name])
        )
        shown = [name for name in fields if name in SHOWN_FIELDS]
        found.append(_annotation(
            "changed", new, fields, {name: old_values[name] for name in shown}, {name: new_values[name] for name in shown}
        ))
    return sorted(found, key=lambda c: (c.source, c.subset, c.file_name, c.task, c.id is None, c.id or 0, c.change))


def _annotation(
    change: str, row: Any, fields: tuple[str, ...] = (), before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AnnotationChange:
    return AnnotationChange(
        change, row.source, row.subset, row.file_name, row.task, row.kind, row.coco_id, row.label, fields,
        before or {}, after or {},
    )


def _values(row: Any) -> dict[str, Any]:
    """The compared fields of an annotation row (the label by name: `fields` compares its lineage)."""
    bbox = [row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h]
    values: dict[str, Any] = {
        "label": row.label, "coco_id": row.coco_id, "bbox": None if all(v is None for v in bbox) else bbox,
        "area": row.area, "iscrowd": row.iscrowd, "score": row.score, "num_keypoints": row.num_keypoints,
        "caption": row.caption,
    }
    values.update({name: getattr(row, name) for name in NAMED_FIELDS})
    values["rle"] = None if row.rle is None else bytes(row.rle)
    return values
