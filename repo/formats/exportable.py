"""What the writers of non-COCO formats (voc, yolo) read: items with their annotations.

A writer gets the project's labels in category order and a stream of `ExportItem`s, one per
image, each holding its annotations in annotation order. These are plain values that know
nothing of the database: whoever reads the project (the reading API, the dataset builder, a
test) turns its items into them, and one item at a time is in memory.

A mask comes in whichever form its source has (compressed COCO RLE, polygons, or numpy
pixels) and is decoded only when a writer asks for it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask

Box = tuple[float, float, float, float]  # COCO's x, y, width, height in pixels

# Kinds as in `annotations_v.kind`.
BBOX, POLYGON, MASK = "bbox", "polygon", "mask"


@dataclass(frozen=True, eq=False)
class ExportAnnotation:
    """One annotation or panoptic segment.

    `kind` says which geometry it has: `bbox` (a box only), `polygon` (`polygons`), `mask`
    (`rle` or `pixels`); `points`, `caption` and `label` carry no region. `rle` is the compressed
    counts string of a mask the size of the item's image; `pixels` a boolean array of
    height x width. `bbox` may be None for a region, which then gets the box of its mask.
    """

    kind: str
    label: str | None
    bbox: Box | None = None
    iscrowd: bool = False
    polygons: Sequence[Sequence[float]] | None = None
    rle: bytes | None = None
    pixels: np.ndarray | None = None

    @property
    def has_region(self) -> bool:
        return self.polygons is not None or self.rle is not None or self.pixels is not None

    def mask(self, height: int, width: int) -> np.ndarray:
        """The region as a boolean height x width array (polygon parts are united)."""
        if self.pixels is not None:
            return np.asarray(self.pixels, dtype=bool)
        return coco_mask.decode(self._rle(height, width)).astype(bool)

    def box(self, height: int, width: int) -> Box | None:
        """The annotation's box; for a region given without one, the box of its mask."""
        if self.bbox is not None:
            return self.bbox
        if self.pixels is not None:
            rle = coco_mask.encode(np.asfortranarray(np.asarray(self.pixels, dtype=np.uint8)))
            return tuple(float(v) for v in coco_mask.toBbox(rle))  # type: ignore[return-value]
        if self.has_region:
            return tuple(float(v) for v in coco_mask.toBbox(self._rle(height, width)))  # type: ignore[return-value]
        return None

    def _rle(self, height: int, width: int) -> dict:
        if self.rle is not None:
            return {"size": [height, width], "counts": self.rle}
        parts = [list(map(float, part)) for part in self.polygons or ()]
        return coco_mask.merge(coco_mask.frPyObjects(parts, height, width))


@dataclass(frozen=True, eq=False)
class ExportItem:
    """One image of a subset. `image` is the encoded file (bytes) or where it lies (a Path);
    None when the project has neither."""

    subset: str
    file_name: str
    width: int
    height: int
    annotations: Sequence[ExportAnnotation] = field(default_factory=tuple)
    image: bytes | Path | None = None

    @property
    def stem(self) -> str:
        """The file name without its extension, sub-folders kept: Datumaro's item id."""
        return os.path.splitext(self.file_name)[0]

    @property
    def extension(self) -> str:
        return os.path.splitext(self.file_name)[1]

    def save_image(self, target: Path) -> bool:
        """Write the image file to `target`; False when it is not available."""
        if isinstance(self.image, bytes):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.image)
            return True
        if isinstance(self.image, Path) and self.image.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.image, target)
            return True
        return False
