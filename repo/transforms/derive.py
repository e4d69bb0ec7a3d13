"""One COCO task made from another, for an export of a task the project does not hold.

Exporting `coco_instances` from a project that holds only panoptic files must not write
nothing and succeed. A task is either derived from the tasks that hold the same content,
or the export fails naming what is missing (`sources_for`):

- instances: from panoptic thing segments (category `isthing` 1), else from person_keypoints
  records without their keypoints;
- stuff: from panoptic stuff segments (`isthing` 0);
- panoptic: from instances (things) and stuff, painted without overlaps;
- image_info: from the images of any other task;
- person_keypoints, captions, labels: from nothing, no other task holds keypoints, captions
  or image labels.

Segments become annotations with their RLE mask, `iscrowd`, `attributes`, and `area` and
`bbox` computed from the pixels by pycocotools (as panopticapi's converter does). A panoptic
segment id is a pixel value, unique in one PNG only, so derived annotations are numbered by
the caller (`ids`). Derived panoptic segments are numbered 1..N per image, in painting order:
stuff first, then things, each by `z_order` and annotation order, a later one keeping the
pixels it shares with an earlier one (`--crop-covered`'s rule, applied to crowd regions too,
since a PNG pixel holds one segment).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from repo.errors import ConflictError, InputError, NotFoundError
from repo.model.records import INTEGER_BIT, NEGATIVE_ZERO_SHIFT, RLE_STRING
from repo.transforms import masks
from repo.transforms.covered import stacking_order
from repo.transforms.segmentation import NEW_RLE_FORM, has_shape, measured, pixels

Row = Mapping[str, Any]

DERIVATIONS: dict[str, tuple[str, ...]] = {
    "instances": ("panoptic", "person_keypoints"),
    "stuff": ("panoptic",),
    "panoptic": ("instances", "stuff"),
    "image_info": ("instances", "person_keypoints", "captions", "labels", "panoptic", "stuff"),
}
# What the tasks that cannot be derived hold and no other task has.
_OWN_CONTENT = {"person_keypoints": "keypoints", "captions": "captions", "labels": "image labels"}
_SCORE_FLAGS = INTEGER_BIT["score"] | INTEGER_BIT["score"] << NEGATIVE_ZERO_SHIFT  # kept from the source
# Keys a derived annotation has of its own; a segment's unknown key of the same name is dropped.
_ANNOTATION_KEYS = frozenset({
    "id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd", "score", "attributes",
})


def sources_for(task: str, available: Collection[str]) -> tuple[str, ...]:
    """The stored tasks an export of `task` reads: `task` itself when held, else the tasks it
    is derived from; raises a one-line NotFoundError naming what is missing."""
    if task in available:
        return (task,)
    sources = tuple(source for source in DERIVATIONS.get(task, ()) if source in available)
    if task == "instances" and "panoptic" in sources:
        sources = ("panoptic",)  # person_keypoints records would repeat the person things
    if sources:
        return sources
    held = ", ".join(sorted(available)) or "no annotation files"
    derivable = DERIVATIONS.get(task)
    if derivable:
        wanted = f"none of {' or '.join(derivable)}" if len(derivable) < 3 else "no file of any other task"
        raise NotFoundError(
            f"cannot export {task}: the project holds no {task} files and {wanted} to derive them from "
            f"(it holds {held})"
        )
    raise NotFoundError(
        f"cannot export {task}: the project holds no {task} files, and no other COCO task holds "
        f"{_OWN_CONTENT[task]} (it holds {held})"
    )


# -- categories ------------------------------------------------------------------------------

def isthing_of(categories: Sequence[Row], shown_as: str) -> dict[int, bool]:
    """Category id -> whether it is a thing, from a panoptic file's categories."""
    kinds = {}
    for category in categories:
        value = (category.get("extra") or {}).get("isthing")
        if value not in (0, 1) or type(value) is bool:
            got = "no 'isthing'" if value is None else f"'isthing' {value!r}"
            raise InputError(
                shown_as, f"category id {category['coco_id']}", "isthing",
                f"the category has {got}; deriving instances and stuff from panoptic segments "
                "needs 0 (stuff) or 1 (thing)",
            )
        kinds[category["coco_id"]] = value == 1
    return kinds


def categories_from_panoptic(categories: Sequence[Row], isthing: Mapping[int, bool], things: bool) -> list[dict[str, Any]]:
    """The panoptic categories of things (or of stuff), without their `isthing` key."""
    return [
        dict(category, extra={k: v for k, v in (category.get("extra") or {}).items() if k != "isthing"} or None)
        for category in categories
        if isthing[category["coco_id"]] == things
    ]


def categories_from_keypoints(categories: Sequence[Row]) -> list[dict[str, Any]]:
    """person_keypoints categories as instances categories: without keypoint names and skeleton."""
    dropped = {"keypoints", "skeleton"}
    return [
        dict(category, extra={k: v for k, v in (category.get("extra") or {}).items() if k not in dropped} or None)
        for category in categories
    ]


def panoptic_categories(things: Sequence[Row], stuff: Sequence[Row]) -> list[dict[str, Any]]:
    """Instances and stuff categories as one panoptic list, with `isthing` 1 and 0."""
    merged: dict[int, dict[str, Any]] = {}
    for rows, isthing in ((things, 1), (stuff, 0)):
        for category in rows:
            other = merged.get(category["coco_id"])
            if other is not None:
                if other["name"] != category["name"]:
                    raise ConflictError(
                        f"category id {category['coco_id']} is '{other['name']}' in instances and "
                        f"'{category['name']}' in stuff; a panoptic file can hold only one"
                    )
                continue
            merged[category["coco_id"]] = dict(category, extra={**(category.get("extra") or {}), "isthing": isthing})
    return list(merged.values())


# -- annotations -----------------------------------------------------------------------------

def annotations_from_segments(
    segments: Sequence[Row],
    isthing: Mapping[int, bool],
    things: bool,
    height: int,
    width: int,
    ids: Iterator[int],
    *,
    rle_form: str = NEW_RLE_FORM,
) -> list[dict[str, Any]]:
    """Instances (`things`) or stuff annotations of one image from its panoptic segments."""
    derived = []
    for segment in segments:
        if isthing.get(segment["category_id"]) != things:
            continue
        extra = {k: v for k, v in (segment.get("extra") or {}).items() if k not in _ANNOTATION_KEYS}
        derived.append(_mask_record(next(ids), segment, bytes(segment["rle"]), rle_form, extra or None, height, width))
    return derived


def _mask_record(
    coco_id: int, source: Row, counts: bytes, rle_form: str, extra: dict[str, Any] | None, height: int, width: int
) -> dict[str, Any]:
    """An annotation record of a mask, with the label, crowd flag, score and attributes of
    `source`, and area and bbox measured from the pixels."""
    record = {
        "coco_id": coco_id, "category_id": source["category_id"], "kind": "mask",
        "iscrowd": source.get("iscrowd") or 0, "score": source.get("score"),
        "area": 0.0, "bbox_x": 0.0, "bbox_y": 0.0, "bbox_w": 0.0, "bbox_h": 0.0,
        "number_forms": _SCORE_FLAGS & (source.get("number_forms") or 0),
        "polygons": None, "rle": counts, "rle_form": rle_form, "keypoints": None, "num_keypoints": None,
        "caption": None, "attributes": source.get("attributes"), "extra": extra,
    }
    return measured(record, counts, height, width)


def annotations_from_keypoints(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """person_keypoints records as instances records: the same, without their keypoints."""
    derived = []
    for row in rows:
        kind = "mask" if row.get("rle") is not None else "polygon" if row.get("polygons") else "bbox"
        derived.append(dict(row, keypoints=None, num_keypoints=None, kind=kind))
    return derived


@dataclass
class DerivedPanoptic:
    """One image's panoptic record made from its instances and stuff annotations."""

    id_map: np.ndarray  # segment id of every pixel, 0 = void
    segments: list[dict[str, Any]] = field(default_factory=list)
    left_out: list[tuple[Row, str]] = field(default_factory=list)  # annotation, why


def panoptic_from_annotations(things: Sequence[Row], stuff: Sequence[Row], height: int, width: int) -> DerivedPanoptic:
    """Paint stuff, then things, into one id map; segments are numbered 1..N in that order."""
    stack: list[Row] = []
    left_out: list[tuple[Row, str]] = []
    for rows in (stuff, things):
        for index in stacking_order(rows):
            if has_shape(rows[index]):
                stack.append(rows[index])
            else:
                left_out.append((rows[index], "has no segmentation to paint"))
    owner = np.zeros((height, width), dtype=np.int64)  # 1 + the stack position keeping each pixel
    for position, row in enumerate(stack, start=1):
        owner[pixels(row, height, width)] = position
    kept_positions = np.flatnonzero(np.bincount(owner.ravel(), minlength=len(stack) + 1)[1:]) + 1
    id_map = np.zeros((height, width), dtype=np.uint32)
    derived = DerivedPanoptic(id_map)
    segment_of = dict(zip(kept_positions.tolist(), range(1, kept_positions.size + 1)))
    for position, row in enumerate(stack, start=1):
        segment_id = segment_of.get(position)
        if segment_id is None:
            left_out.append((row, "lost every pixel to annotations painted after it"))
            continue
        mask = owner == position
        id_map[mask] = segment_id
        derived.segments.append(_mask_record(segment_id, row, masks.encode(mask), RLE_STRING, None, height, width))
    derived.left_out = left_out
    return derived
