"""`--segmentation-mode`: write masks as polygons or polygons as masks, on request only.

A plain export writes each segmentation in the form it was imported in. Datumaro's modes:

- `mask`: every polygon becomes the RLE of exactly the pixels pycocotools draws for it;
- `polygons`: every RLE mask is traced into polygons that draw back the same pixels (see
  `masks.trace`); a `tolerance` (in pixels) simplifies them, and then pixels may change, but
  an instance whose simplified polygons would reach an IoU below MIN_SIMPLIFIED_IOU with its
  mask keeps the exact ones;
- `guess`: crowd annotations (`iscrowd` 1) become masks, the others polygons; an annotation
  without `iscrowd` keeps its form.

Unlike Datumaro, `iscrowd` is never changed (it marks a crowd region, which COCO's evaluation
ignores; it is not a flag for the encoding), and an annotation without a segmentation keeps
none (a box is not turned into a mask). `area` and `bbox` are kept as stored while the pixels
are the same, which they are for `mask` and for tracing without tolerance; when a simplified
tracing changes the pixels, the fields present are recomputed from the new pixels.

New masks are written as uncompressed RLE (a `counts` list), the form of COCO's own crowd
annotations and of Datumaro's writer; `rle_form="compressed"` writes `pycocotools.mask.encode`'s
string instead, and also converts masks that were stored in the other form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from repo.model.records import BBOX_FIELDS, INTEGER_BIT, NEGATIVE_ZERO_SHIFT, RLE_LIST, RLE_STRING
from repo.transforms import masks

MODES = ("guess", "polygons", "mask")
RLE_FORMS = {"compressed": RLE_STRING, "uncompressed": RLE_LIST}
NEW_RLE_FORM = RLE_LIST
# A simplified tracing that draws its mask less faithfully than this is replaced by the exact one.
MIN_SIMPLIFIED_IOU = 0.8

Row = Mapping[str, Any]


@dataclass
class IouTally:
    """How closely traced polygons draw their masks: the report line of `polygons` mode."""

    count: int = 0
    total: float = 0.0
    minimum: float = 1.0

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 1.0

    def line(self) -> str:
        return (
            f"polygons traced from {self.count} masks: IoU with the masks mean {self.mean:.4f}, "
            f"min {self.minimum:.4f}"
        )


def has_shape(row: Row) -> bool:
    """Whether the annotation has pixels to convert (polygon parts or a mask)."""
    return bool(row.get("polygons")) or row.get("rle") is not None


def pixels(row: Row, height: int, width: int) -> np.ndarray:
    """The pixels of an annotation's segmentation, as pycocotools draws it."""
    if row.get("rle") is not None:
        return masks.decode(bytes(row["rle"]), height, width)
    return masks.rasterise(row.get("polygons") or [], height, width)


def convert_segmentation(
    row: Row,
    mode: str | None,
    height: int,
    width: int,
    *,
    rle_form: str | None = None,
    tolerance: float = 0.0,
    tally: IouTally | None = None,
) -> Row:
    """The annotation with its segmentation in the form `mode` asks for (None: the form it has;
    the row itself when nothing changes). `rle_form` (RLE_STRING or RLE_LIST) also converts
    stored masks."""
    if mode is not None and mode not in MODES:
        raise ValueError(f"unknown segmentation mode {mode!r}")
    if not has_shape(row):
        return row
    wanted = _wanted(row, mode) if mode else None
    if wanted == "mask" and row.get("rle") is None:
        counts = masks.encode(masks.rasterise(row["polygons"], height, width))
        return _replaced(row, polygons=None, rle=counts, rle_form=rle_form or NEW_RLE_FORM, kind="mask")
    if wanted == "polygons" and row.get("rle") is not None:
        return _traced(row, height, width, tolerance, tally)
    if row.get("rle") is not None and rle_form is not None and row.get("rle_form") != rle_form:
        return _replaced(row, rle_form=rle_form)
    return row


def _wanted(row: Row, mode: str) -> str | None:
    if mode != "guess":
        return mode
    return {1: "mask", 0: "polygons"}.get(row.get("iscrowd"))  # type: ignore[arg-type]


def _traced(row: Row, height: int, width: int, tolerance: float, tally: IouTally | None) -> Row:
    mask = masks.decode(bytes(row["rle"]), height, width)
    polygons = masks.trace(mask, tolerance)
    drawn = masks.rasterise(polygons, height, width)
    if tolerance > 0 and masks.iou(drawn, mask) < MIN_SIMPLIFIED_IOU:
        polygons = masks.trace(mask)
        drawn = masks.rasterise(polygons, height, width)
    if tally is not None:
        tally.add(masks.iou(drawn, mask))
    traced = _replaced(row, polygons=polygons, rle=None, rle_form=None, kind="polygon")
    if np.array_equal(drawn, mask):
        return traced
    return measured(traced, masks.encode(drawn), height, width)


def measured(row: Row, counts: bytes, height: int, width: int) -> dict[str, Any]:
    """The annotation with `area` and `bbox` recomputed from new pixels (pycocotools' pixel
    count and box, written as integers); a field the annotation lacks stays absent."""
    area, box = masks.area_and_bbox(counts, height, width)
    changes: dict[str, Any] = {}
    flags = row.get("number_forms") or 0
    if row.get("area") is not None:
        changes["area"] = float(area)
        flags = _as_integer(flags, "area")
    if row.get("bbox_x") is not None:
        for name, value in zip(BBOX_FIELDS, box):
            changes[name] = float(value)
            flags = _as_integer(flags, name)
    return _replaced(row, number_forms=flags, **changes)


def _as_integer(flags: int, name: str) -> int:
    """Mark a numeric field as a JSON integer (and not -0.0)."""
    return (flags | INTEGER_BIT[name]) & ~(INTEGER_BIT[name] << NEGATIVE_ZERO_SHIFT)


def _replaced(row: Row, **changes: Any) -> dict[str, Any]:
    new = dict(row)
    if "kind" in changes and new.get("kind") not in ("polygon", "mask", "bbox"):
        del changes["kind"]  # a person_keypoints record stays of kind "points"
    new.update(changes)
    return new
