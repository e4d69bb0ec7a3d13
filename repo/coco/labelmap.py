"""Renaming, merging and dropping categories of a file as it is imported (`--label-map`).

A label map is a JSON object `{"old name": "new name" | null}`. A renamed category whose new
name another category of the same file already has is merged into it (its annotations move
there); `null` drops the category and its annotations. Content hashes are recomputed for what
changed, so re-importing the same files with the same map changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repo.coco.writer import annotation_hash, category_object
from repo.errors import InputError
from repo.model.hashing import record_hash
from repo.model.jsonio import describe, load_json_file
from repo.model.records import ANNOTATION_FIELDS, AnnotationRecord, TaskFile

LabelMap = dict[str, str | None]


def load_label_map(path: Path) -> LabelMap:
    document = load_json_file(path, str(path))
    if not isinstance(document, dict):
        raise InputError(str(path), None, None, f"the top-level value is {describe(document)}, expected an object")
    for old, new in document.items():
        if new is not None and not isinstance(new, str):
            raise InputError(str(path), f"label '{old}'", None, f"expected a new name or null, got {describe(new)}")
    return document


def apply_label_map(task_file: TaskFile, mapping: LabelMap) -> None:
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
            category["hash"] = record_hash(category_object(category))
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
