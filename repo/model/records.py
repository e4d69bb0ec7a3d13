"""Validated records, in dsrepo's own field names: what a reader hands to the store.

A format's reader turns its file's objects into these records and its writer turns stored rows
back into objects; only those modules know a format's keys. The records follow COCO's
structure (a file of categories, images and annotations; panoptic records with segments),
the richest format dsrepo keeps losslessly. Every key a record does not lift into a field of
its own is kept verbatim in `extra`, so nothing in a file is lost. Numeric fields that COCO
allows as integers or floats remember how the file wrote them in `number_forms` (see
INTEGER_BIT): as an integer or not, and -0.0 with its sign.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypedDict

# Bits of `number_forms`, one per numeric field: set when the value was a JSON integer (so 48 is
# not written back as 48.0).
INTEGER_BIT = {"bbox_x": 1, "bbox_y": 2, "bbox_w": 4, "bbox_h": 8, "area": 16, "score": 32}
# The same bit shifted by this much: the value was -0.0 (SQLite's REAL columns drop the sign).
NEGATIVE_ZERO_SHIFT = 6
BBOX_FIELDS = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")

# `rle_form`: how the file wrote a mask's counts.
RLE_STRING = "string"  # compressed, as pycocotools.mask.encode writes it
RLE_LIST = "list"  # uncompressed run lengths, as COCO's crowd annotations have them


# The fields of an annotation record that become columns of its row.
ANNOTATION_FIELDS = (
    "kind", "coco_id", "category_id", "iscrowd", "score", "area", "bbox_x", "bbox_y", "bbox_w",
    "bbox_h", "number_forms", "polygons", "rle", "rle_form", "keypoints", "num_keypoints", "caption",
    "attributes", "extra", "hash",
)


class ImageRecord(TypedDict):
    coco_id: int
    file_name: str
    width: int
    height: int
    extra: dict[str, Any] | None
    hash: bytes


class CategoryRecord(TypedDict):
    coco_id: int
    name: str
    supercategory: str | None  # None: the key was absent
    extra: dict[str, Any] | None
    hash: bytes


class AnnotationRecord(TypedDict, total=False):
    """An annotation object, a caption or label record, or a panoptic segment."""

    coco_id: int | None
    image_id: int
    category_id: int | None
    kind: str  # bbox, polygon, mask, points, caption, label
    iscrowd: int | None
    score: float | None
    area: float | None
    bbox_x: float | None
    bbox_y: float | None
    bbox_w: float | None
    bbox_h: float | None
    number_forms: int
    polygons: list[list[float]] | None
    rle: bytes | None
    rle_form: str | None
    keypoints: list[float] | None
    num_keypoints: int | None
    caption: str | None
    attributes: dict[str, Any] | None
    extra: dict[str, Any] | None
    hash: bytes


@dataclass
class PanopticRecord:
    """One entry of a panoptic file's `annotations`: a PNG and the segments painted in it."""

    image_id: int
    png_name: str
    extra: dict[str, Any] | None
    hash: bytes
    segments: list[AnnotationRecord] = field(default_factory=list)
    # The PNG as read: its real path, its SHA-256 and the fingerprint of the segments cut from
    # it (repo.model.hashing.segments_fingerprint), so that an export can write it as it was.
    png_path: str | None = None
    png_sha256: str | None = None
    png_segments_hash: bytes | None = None


@dataclass
class FilePart:
    """A window of a file too big to hold at once: some of its images, annotations or panoptic
    records (a panoptic part's segments are cut from their PNGs before it is written)."""

    images: list[ImageRecord] = field(default_factory=list)
    annotations: list[AnnotationRecord] = field(default_factory=list)
    panoptic: list[PanopticRecord] = field(default_factory=list)


@dataclass
class WindowDigests:
    """A file read in windows, as an update knows it again (see repo.model.windows): the digest
    of every byte but its annotations' and, in file order, each annotations window's digest and
    number of elements."""

    frame: bytes
    windows: list[tuple[bytes, int]] = field(default_factory=list)


@dataclass
class TaskFile:
    """One COCO annotation file, validated, in the order the file had everything.

    A file too big to hold comes with `parts`: its images, then its annotations or panoptic
    records, validated a window at a time as they are taken (`images`, `annotations` and
    `panoptic` stay empty until `gather_parts`)."""

    task: str
    subset: str
    name: str  # the file's own name, e.g. instances_val2017.json
    layout: list[str]  # top-level keys in file order
    info: Any
    licenses: Any
    extra: dict[str, Any] | None  # top-level keys COCO does not define
    categories: list[CategoryRecord]
    images: list[ImageRecord]
    annotations: list[AnnotationRecord]
    panoptic: list[PanopticRecord]
    sha256: str | None = None  # of the file's bytes, when read from a file (an update skips it if unchanged)
    parts: Iterator[FilePart] | None = None
    # Of a file read in windows without a problem, once its parts are taken: remembered with
    # its rows, for an update to read again only the windows that changed.
    windows: WindowDigests | None = None


@dataclass(frozen=True)
class KeptPng:
    """A panoptic PNG as last imported: its SHA-256, the size of its image, and the mask of
    each segment it paints (compressed RLE by segment id), which the same bytes give again."""

    sha256: str
    width: int
    height: int
    masks: dict[int, bytes]


def gather_parts(task_file: TaskFile) -> None:
    """Hold all of a windowed file's records in `images`, `annotations` and `panoptic`, for the
    steps that need them all at once (an update's matching, a label map's merges)."""
    if task_file.parts is None:
        return
    for part in task_file.parts:
        task_file.images.extend(part.images)
        task_file.annotations.extend(part.annotations)
        task_file.panoptic.extend(part.panoptic)
    task_file.parts = None
