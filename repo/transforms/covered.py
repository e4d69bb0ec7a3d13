"""`--crop-covered`: no two non-crowd segments of an image share a pixel.

The annotations of an image are stacked: by `z_order` (a number in `attributes`, 0 when
absent), and by annotation order among equals. Where two overlap, the one higher in the
stack keeps the pixel and the lower one loses it. Crowd annotations (`iscrowd` 1) mark
regions, not objects: they neither lose nor take pixels. Annotations without a segmentation
(boxes, keypoints alone) are not involved.

An annotation that lost pixels is rewritten in its own form: polygons are traced again from
the remaining pixels (exactly, see `masks.trace`), a mask keeps its RLE form; its `area` and
`bbox` are recomputed from the remaining pixels. One that lost every pixel is not written:
it is returned in `emptied`, for the export to report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from repo.transforms import masks
from repo.transforms.segmentation import has_shape, measured, pixels

Row = Mapping[str, Any]


@dataclass
class Cropped:
    rows: list[Row] = field(default_factory=list)  # in input order; cropped ones rewritten
    emptied: list[Row] = field(default_factory=list)  # lost every pixel to higher ones


def z_order(row: Row) -> float:
    """The annotation's place in the stack: `attributes.z_order` when it is a number, else 0."""
    value = (row.get("attributes") or {}).get("z_order")
    return value if type(value) in (int, float) else 0


def stacking_order(rows: Sequence[Row]) -> list[int]:
    """Indexes of `rows`, lowest in the stack first (stable: annotation order among equals)."""
    return sorted(range(len(rows)), key=lambda index: z_order(rows[index]))


def crop_covered(rows: Sequence[Row], height: int, width: int) -> Cropped:
    """The annotations of one image with overlaps between non-crowd segments removed."""
    involved = [index for index in stacking_order(rows) if has_shape(rows[index]) and rows[index].get("iscrowd") != 1]
    owner = np.full((height, width), -1, dtype=np.int64)  # the index of the row keeping each pixel
    before: dict[int, int] = {}
    for index in involved:
        mask = pixels(rows[index], height, width)
        before[index] = int(np.count_nonzero(mask))
        owner[mask] = index
    after = np.bincount(owner.ravel() + 1, minlength=len(rows) + 1)[1:]
    result = Cropped()
    for index, row in enumerate(rows):
        if index not in before or after[index] == before[index]:
            result.rows.append(row)
        elif after[index] == 0:
            result.emptied.append(row)
        else:
            result.rows.append(_with_pixels(row, owner == index, height, width))
    return result


def _with_pixels(row: Row, mask: np.ndarray, height: int, width: int) -> dict[str, Any]:
    counts = masks.encode(mask)
    if row.get("rle") is not None:
        new = dict(row, rle=counts)
    else:
        new = dict(row, polygons=masks.trace(mask))
    return measured(new, counts, height, width)
