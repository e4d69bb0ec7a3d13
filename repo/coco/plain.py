"""The common shape of a COCO record, read in one go.

Nearly every record of a real file has the same keys as its neighbours and values of the usual
types: an image with an integer id, a plain file name and its size; an instances annotation
with exactly id, image_id, category_id, bbox, area, iscrowd and segmentation; a panoptic
segment with id, category_id, bbox, area and iscrowd. The reader's step-by-step checks
(repo.coco.reader) cost a dozen Python calls per record, as much again as parsing the file.
The functions here check such a record with a few calls that each test a whole list in C
(`set(map(type, values))`), and build the record the reader would build, field for field and
in the same order. Anything else, a bad value or merely an unusual record (a missing or extra
key, a null, a boolean, an integer beyond 2^53 in a bbox), they do not judge: they return None
and the reader reads the record step by step, which names its first problem exactly as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import chain
from typing import Any

from repo.model.hashing import NestingError, record_hash
from repo.model.paths import unsafe_path_problem
from repo.model.records import INTEGER_BIT, NEGATIVE_ZERO_SHIFT, AnnotationRecord, ImageRecord

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
INT32_MAX = (1 << 31) - 1
EXACT_FLOAT_LIMIT = 1 << 53  # beyond this a float column would change the integer
PANOPTIC_ID_LIMIT = 1 << 24  # a PNG pixel holds 24 bits

_IMAGE_KEYS = frozenset({"id", "file_name", "width", "height"})
_OBJECT_KEYS = frozenset({"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation"})
_KEYPOINT_KEYS = _OBJECT_KEYS | {"keypoints", "num_keypoints"}
_CAPTION_KEYS = frozenset({"id", "image_id", "caption"})
_LABEL_KEYS = frozenset({"id", "image_id", "category_id"})
_RLE_KEYS = frozenset({"counts", "size"})
_SEGMENT_KEYS = frozenset({"id", "category_id", "bbox", "area", "iscrowd"})

_lists_only = frozenset({list}).issuperset
_numbers_only = frozenset({int, float}).issuperset
_odd = (1).__and__
_BBOX_BITS = tuple(INTEGER_BIT[name] for name in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
# The integer bits of a bbox by the types of its four values; a missing entry: not 4 numbers.
_BBOX_FORMS = {
    tuple(int if bit & forms else float for bit in _BBOX_BITS): forms for forms in range(16)
}
_AREA_BIT = INTEGER_BIT["area"]

RleReader = Callable[[dict[str, Any], str, ImageRecord], tuple[bytes, str]]


def plain_image(obj: Any) -> ImageRecord | None:
    """The record of an image with a valid id, file name and size, or None."""
    if type(obj) is not dict:
        return None
    coco_id, file_name = obj.get("id"), obj.get("file_name")
    width, height = obj.get("width"), obj.get("height")
    if not (
        type(coco_id) is int and INT64_MIN <= coco_id <= INT64_MAX and type(file_name) is str
        and type(width) is int and 0 < width <= INT32_MAX and type(height) is int and 0 < height <= INT32_MAX
    ) or unsafe_path_problem(file_name):
        return None
    digest = _hash(obj)
    if digest is None:
        return None
    extra = {key: value for key, value in obj.items() if key not in _IMAGE_KEYS}
    return ImageRecord(
        coco_id=coco_id, file_name=file_name, width=width, height=height, extra=extra or None, hash=digest
    )


def plain_annotations(
    task: str, images: dict[int, ImageRecord], categories: set[int] | None, keypoint_counts: dict[int, int],
    read_rle: RleReader,
) -> Callable[[Any], AnnotationRecord | None]:
    """The one-go reader of the annotations of `task`'s files. An RLE mask is checked by
    `read_rle` (the reader's own), last, so that its error is the record's first."""
    if task == "captions":
        return lambda obj: _caption(obj, images)
    if task == "labels":
        return lambda obj: _label(obj, images, categories)
    if task == "person_keypoints":
        return lambda obj: _object(obj, images, categories, keypoint_counts, read_rle)
    return lambda obj: _object(obj, images, categories, None, read_rle)


def _head(obj: Any, keys: frozenset[str], images: dict[int, ImageRecord]) -> ImageRecord | None:
    """The image of an annotation with exactly `keys`, a valid id and a known image, or None."""
    if type(obj) is not dict or obj.keys() != keys:
        return None
    coco_id, image_id = obj["id"], obj["image_id"]
    if type(coco_id) is not int or not INT64_MIN <= coco_id <= INT64_MAX or type(image_id) is not int:
        return None
    return images.get(image_id)


def _hash(obj: dict[str, Any]) -> bytes | None:
    """The record's hash; None for one nested too deep, which the step-by-step reader refuses."""
    try:
        return record_hash(obj)
    except NestingError:
        return None


def _known_category(category_id: Any, categories: set[int] | None) -> bool:
    return type(category_id) is int and (
        category_id in categories if categories is not None else INT64_MIN <= category_id <= INT64_MAX
    )


def _caption(obj: Any, images: dict[int, ImageRecord]) -> AnnotationRecord | None:
    if _head(obj, _CAPTION_KEYS, images) is None:
        return None
    caption = obj["caption"]
    if type(caption) is not str or "\x00" in caption:
        return None
    digest = _hash(obj)
    if digest is None:
        return None
    return AnnotationRecord(
        coco_id=obj["id"], image_id=obj["image_id"], number_forms=0, hash=digest, caption=caption,
        kind="caption", extra=None,
    )


def _label(obj: Any, images: dict[int, ImageRecord], categories: set[int] | None) -> AnnotationRecord | None:
    if _head(obj, _LABEL_KEYS, images) is None or not _known_category(obj["category_id"], categories):
        return None
    digest = _hash(obj)
    if digest is None:
        return None
    return AnnotationRecord(
        coco_id=obj["id"], image_id=obj["image_id"], number_forms=0, hash=digest,
        category_id=obj["category_id"], kind="label", extra=None,
    )


def _object(
    obj: Any, images: dict[int, ImageRecord], categories: set[int] | None,
    keypoint_counts: dict[int, int] | None, read_rle: RleReader,
) -> AnnotationRecord | None:
    """An instances or stuff record (a person_keypoints one with `keypoint_counts`)."""
    image = _head(obj, _OBJECT_KEYS if keypoint_counts is None else _KEYPOINT_KEYS, images)
    if image is None or not _known_category(obj["category_id"], categories):
        return None
    numbers = _bbox_and_area(obj["bbox"], obj["area"])
    if numbers is None:
        return None
    forms, bbox_x, bbox_y, bbox_w, bbox_h, area = numbers
    iscrowd, segmentation = obj["iscrowd"], obj["segmentation"]
    if type(iscrowd) is not int or iscrowd not in (0, 1):
        return None
    if type(segmentation) is list:
        if not segmentation or not _lists_only(map(type, segmentation)):
            return None
        lengths = list(map(len, segmentation))
        if min(lengths) < 6 or any(map(_odd, lengths)):
            return None
        if not _numbers_only(map(type, chain.from_iterable(segmentation))):
            return None
    elif type(segmentation) is not dict or segmentation.keys() != _RLE_KEYS:
        return None
    if keypoint_counts is not None:
        keypoints, num = obj["keypoints"], obj["num_keypoints"]
        expected = 3 * keypoint_counts.get(obj["category_id"], 0)
        if (
            type(keypoints) is not list or not _numbers_only(map(type, keypoints))
            or (expected and len(keypoints) != expected) or len(keypoints) % 3
            or type(num) is not int or not 0 <= num <= INT32_MAX
        ):
            return None
    digest = _hash(obj)
    if digest is None:
        return None
    record = AnnotationRecord(
        coco_id=obj["id"], image_id=obj["image_id"], number_forms=forms, hash=digest,
        category_id=obj["category_id"], bbox_x=bbox_x, bbox_y=bbox_y, bbox_w=bbox_w, bbox_h=bbox_h,
        area=area, iscrowd=iscrowd,
    )
    if type(segmentation) is list:
        record["polygons"] = segmentation
        kind = "polygon"
    else:  # the RLE's own checks come last: its error is then the record's first
        record["rle"], record["rle_form"] = read_rle(segmentation, f"annotation id {obj['id']}", image)
        kind = "mask"
    if keypoint_counts is not None:
        record["keypoints"] = obj["keypoints"]
        record["num_keypoints"] = obj["num_keypoints"]
        kind = "points"
    record["kind"] = kind
    record["extra"] = None
    return record


def plain_segment(obj: Any, image_id: int, categories: set[int] | None) -> AnnotationRecord | None:
    """A panoptic segment of image `image_id` (its `segments_info` entry)."""
    if type(obj) is not dict or obj.keys() != _SEGMENT_KEYS:
        return None
    segment_id, iscrowd = obj["id"], obj["iscrowd"]
    if type(segment_id) is not int or not 0 < segment_id < PANOPTIC_ID_LIMIT:
        return None
    if not _known_category(obj["category_id"], categories) or type(iscrowd) is not int or iscrowd not in (0, 1):
        return None
    numbers = _bbox_and_area(obj["bbox"], obj["area"])
    if numbers is None:
        return None
    forms, bbox_x, bbox_y, bbox_w, bbox_h, area = numbers
    digest = _hash(obj)
    if digest is None:
        return None
    return AnnotationRecord(
        coco_id=segment_id, image_id=image_id, kind="mask", number_forms=forms, hash=digest,
        category_id=obj["category_id"], bbox_x=bbox_x, bbox_y=bbox_y, bbox_w=bbox_w, bbox_h=bbox_h,
        area=area, iscrowd=iscrowd, extra=None,
    )


def _bbox_and_area(bbox: Any, area: Any) -> tuple[int, float, float, float, float, float] | None:
    """The number_forms bits and the values of a bbox of 4 numbers and a numeric area, or None."""
    if type(bbox) is not list or len(bbox) != 4:
        return None
    forms = _BBOX_FORMS.get(tuple(map(type, bbox)))
    if forms is None or (forms and not -EXACT_FLOAT_LIMIT <= min(bbox) <= max(bbox) <= EXACT_FLOAT_LIMIT):
        return None
    if 0.0 in bbox:  # -0.0 is told apart from 0.0 by its sign alone
        for bit, value in zip(_BBOX_BITS, bbox):
            if value == 0.0 and type(value) is float and math.copysign(1.0, value) < 0:
                forms |= bit << NEGATIVE_ZERO_SHIFT
    if type(area) is int:
        if not -EXACT_FLOAT_LIMIT <= area <= EXACT_FLOAT_LIMIT:
            return None
        forms |= _AREA_BIT
    elif type(area) is not float:
        return None
    elif area == 0.0 and math.copysign(1.0, area) < 0:
        forms |= _AREA_BIT << NEGATIVE_ZERO_SHIFT
    bbox_x, bbox_y, bbox_w, bbox_h = map(float, bbox)
    return forms, bbox_x, bbox_y, bbox_w, bbox_h, float(area)
