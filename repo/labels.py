"""Labels: renaming, merging and deleting them, and label maps applied as files are imported.

A label is a project-wide name; categories of every file point at the label of their name, so
merges and queries work on labels. Renaming, merging or deleting a label is one transaction
and a change like any other: `status` shows it, `commit` records it, `checkout` undoes it.

A label map (`import --label-map`) is a JSON object `{"old name": "new name" | null}` applied
to each file's categories before they are stored: a renamed category whose new name another
category of the same file already has is merged into it (its annotations move there); `null`
drops the category and its annotations.

A changed record gets a new content hash here, computed as the reader computes it for a fresh
record (the hash of its COCO object), so that re-importing the same files with the same map,
or renaming a label back, compares equal. The rows themselves are written by `repo.store.labels`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Row

from repo.coco.writer import annotation_hash, category_hash
from repo.errors import ConflictError, InputError
from repo.model.jsonio import describe, load_json_file
from repo.model.records import ANNOTATION_FIELDS, AnnotationRecord, TaskFile
from repo.project import Project
from repo.store import labels as stored
from repo.store import schema
from repo.store.previous import forget_digests
from repo.store.versions import VersionWriter, version_values

LabelMap = dict[str, str | None]


def rename_label(project: Project, old: str, new: str) -> None:
    """Rename label `old` to `new` in every source; `new` must not exist yet (merge instead)."""
    with project.writing() as connection:
        versions = VersionWriter.begin(connection)
        _rename(versions, stored.require_label(connection, old), new)


def merge_labels(project: Project, names: list[str], *, into: str) -> None:
    """Merge labels `names` into `into`, which is created by renaming the first if missing;
    in a file that has both, annotations move to `into`'s category."""
    with project.writing() as connection:
        versions = VersionWriter.begin(connection)
        labels = [stored.require_label(connection, name) for name in dict.fromkeys(names)]
        if any(label.name == into for label in labels):
            raise ConflictError(f"cannot merge label '{into}' into itself")
        target = stored.live_label(connection, into)
        if target is None:
            _rename(versions, labels[0], into)
            labels = labels[1:]
            target = stored.require_label(connection, into)
        for label in labels:
            _merge(versions, label, target)


def delete_label(project: Project, name: str) -> int:
    """Delete a label, its categories and their annotations; returns how many annotations."""
    with project.writing() as connection:
        versions = VersionWriter.begin(connection)
        label = stored.require_label(connection, name)
        categories = stored.categories_of(connection, label.id)
        removed = sum(stored.close_annotations_of(versions, category) for category in categories)
        forget_digests(versions.connection, {category.file_id for category in categories})
        stored.close_categories(versions, categories)
        stored.close_label(versions, label)
        return removed


def _rename(versions: VersionWriter, label: Row[Any], new_name: str) -> None:
    versions.lock_labels()
    if stored.live_label(versions.connection, new_name) is not None:
        raise ConflictError(
            f"a label named '{new_name}' already exists; use `dsrepo labels merge {label.name} --into {new_name}`"
        )
    _recategorize(versions, stored.categories_of(versions.connection, label.id), name=new_name)
    renamed = version_values(schema.labels, label, name=new_name, hash=stored.label_hash(new_name))
    versions.replace(schema.labels, [label], [renamed])


def _merge(versions: VersionWriter, label: Row[Any], target: Row[Any]) -> None:
    """Move everything of `label` to `target`; in a file that has both, annotations move to
    the target's category and the label's category goes."""
    connection = versions.connection
    targets = {row.file_id: row for row in stored.categories_of(connection, target.id)}
    moved, gone = [], []
    for category in stored.categories_of(connection, label.id):
        kept = targets.get(category.file_id)
        if kept is None:
            moved.append(category)
        else:
            _move_annotations(versions, category.file_id, category.coco_id, kept.coco_id)
            gone.append(category)
    stored.close_categories(versions, gone)
    _recategorize(versions, moved, name=target.name, label_id=target.id)
    stored.close_label(versions, label)


def _recategorize(versions: VersionWriter, categories: list[Row[Any]], **changes: Any) -> None:
    """New versions of category rows with `changes`, and their new hashes."""
    renewed = []
    for row in categories:
        values = version_values(schema.categories, row, **changes)
        values["hash"] = category_hash(values)
        renewed.append(values)
    versions.replace(schema.categories, categories, renewed)
    forget_digests(versions.connection, {row.file_id for row in categories})


def _move_annotations(versions: VersionWriter, file_id: int, old_id: int, new_id: int) -> None:
    task, rows = stored.annotations_of_category(versions.connection, file_id, old_id)
    renewed = []
    for row in rows:
        size = row.record or {"height": row.height, "width": row.width}
        values = version_values(schema.annotations, row, category_id=new_id)
        values["hash"] = annotation_hash(values, task, row.image_coco_id, size["height"], size["width"])
        renewed.append(values)
    versions.replace(schema.annotations, rows, renewed)
    forget_digests(versions.connection, {file_id})


# -- label maps, applied at import ----------------------------------------------------------

def load_label_map(label_map: str | os.PathLike[str] | Mapping[str, str | None]) -> LabelMap:
    """A label map from a JSON file, or checked as given: `{"old": "new" | null}`."""
    if isinstance(label_map, Mapping):
        shown, document = "label map", dict(label_map)
    else:
        shown = os.fspath(label_map)
        document = load_json_file(Path(label_map), shown)
    if not isinstance(document, dict):
        raise InputError(shown, None, None, f"the top-level value is {describe(document)}, expected an object")
    for old, new in document.items():
        if new is not None and not isinstance(new, str):
            raise InputError(shown, f"label '{old}'", None, f"expected a new name or null, got {describe(new)}")
    return document


def apply_label_map(task_file: TaskFile, mapping: LabelMap) -> None:
    """Rename, merge and drop the categories of a freshly read file (see the module docstring)."""
    kept: dict[str, int] = {}  # new name -> id of the category that carries it
    moved: dict[int, int] = {}  # category id -> id it merges into
    dropped: set[int] = set()
    categories = []
    for category in task_file.categories:
        name = category["name"]
        if name in mapping:
            name = mapping[name]
            if name is None:
                dropped.add(category["coco_id"])
                continue
        if name in kept and name != category["name"]:
            moved[category["coco_id"]] = kept[name]
            continue
        kept.setdefault(name, category["coco_id"])
        if name != category["name"]:
            category["name"] = name
            category["hash"] = category_hash(category)
        categories.append(category)
    task_file.categories = categories
    if not (moved or dropped):
        return
    sizes = {image["coco_id"]: (image["height"], image["width"]) for image in task_file.images}
    task_file.annotations = _remapped(task_file.annotations, task_file.task, moved, dropped, sizes)
    for record in task_file.panoptic:
        record.segments = _remapped(record.segments, "panoptic", moved, dropped, sizes)


def _remapped(
    records: list[AnnotationRecord], task: str, moved: dict[int, int], dropped: set[int],
    sizes: dict[int, tuple[int, int]],
) -> list[AnnotationRecord]:
    result = []
    for record in records:
        category_id = record.get("category_id")
        if category_id in dropped:
            continue
        if category_id in moved:
            record["category_id"] = moved[category_id]
            row: dict[str, Any] = {name: record.get(name) for name in ANNOTATION_FIELDS}
            height, width = sizes[record["image_id"]]
            record["hash"] = annotation_hash(row, task, record["image_id"], height, width)
        result.append(record)
    return result
