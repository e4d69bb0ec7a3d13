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

A whole list of records (a file's images, its annotations, or a window of them) is first read
as one batch (`plain_images`, `plain_annotation_batch`): each field's values of all records
checked together, the digests computed by C loops, the records built in one loop. A batch
any of whose records is not of the common shape is read one record at a time as above. A
batch also says how many keys its objects hold (every nested object counted), which the
reader's duplicate-key check then need not walk: a record of the common shape has no objects
but those its shape names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from itertools import chain, compress, islice, repeat
from operator import contains, is_, itemgetter, or_
from typing import Any

import numpy as np

from repo.coco.rle import RleError, decode_strings
from repo.errors import InputError
from repo.model.hashing import NestingError, record_hash, record_hashes
from repo.model.jsonio import parsed_key_count
from repo.model.paths import unsafe_path_problem
from repo.model.records import INTEGER_BIT, NEGATIVE_ZERO_SHIFT, RLE_STRING, AnnotationRecord, ImageRecord

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
INT32_MAX = (1 << 31) - 1
EXACT_FLOAT_LIMIT = 1 << 53  # beyond this a float column would change the integer
PANOPTIC_ID_LIMIT = 1 << 24  # a PNG pixel holds 24 bits
UINT32_LIMIT = 1 << 32  # run lengths pycocotools reads
RLE_GROUP_BYTES = 1 << 17  # compressed RLE strings decoded together

_IMAGE_KEYS = frozenset({"id", "file_name", "width", "height"})
_OBJECT_KEYS = frozenset({"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation"})
_KEYPOINT_KEYS = _OBJECT_KEYS | {"keypoints", "num_keypoints"}
_CAPTION_KEYS = frozenset({"id", "image_id", "caption"})
_LABEL_KEYS = frozenset({"id", "image_id", "category_id"})
_RLE_KEYS = frozenset({"counts", "size"})
_SEGMENT_KEYS = frozenset({"id", "category_id", "bbox", "area", "iscrowd"})

_lists_only = frozenset({list}).issuperset
_numbers_only = frozenset({int, float}).issuperset
_ints_only = frozenset({int}).issuperset
_strings_only = frozenset({str}).issuperset
_dicts_only = frozenset({dict}).issuperset
_flags_only = frozenset({0, 1}).issuperset
_fours_only = frozenset({4}).issuperset
_geometry_only = frozenset({list, dict}).issuperset
_is_list = partial(is_, list)
_is_zero = (0.0).__eq__
_odd = (1).__and__
_BBOX_BITS = tuple(INTEGER_BIT[name] for name in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
# The integer bits of a bbox by the types of its four values; a missing entry: not 4 numbers.
_BBOX_FORMS = {
    tuple(int if bit & forms else float for bit in _BBOX_BITS): forms for forms in range(16)
}
_AREA_BIT = INTEGER_BIT["area"]

RleReader = Callable[[dict[str, Any], str, ImageRecord], tuple[bytes, str]]
# Records (None where one must be read step by step) and the keys of their objects (None: not
# counted, some record was not of the common shape).
Batch = tuple[list[Any], int | None]


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


def _shapes_are(raw: list[Any], keys: frozenset[str]) -> bool:
    """Every element is an object with exactly `keys` (their order aside)."""
    return _dicts_only(map(type, raw)) and all(
        len(shape) == len(keys) and keys.issuperset(shape) for shape in set(map(tuple, raw))
    )


def _valid_ids(ids: tuple[Any, ...]) -> bool:
    return _ints_only(map(type, ids)) and INT64_MIN <= min(ids) and max(ids) <= INT64_MAX


def _known_images(image_ids: tuple[Any, ...], images: dict[int, ImageRecord]) -> bool:
    return _ints_only(map(type, image_ids)) and images.keys() >= set(image_ids)


def _known_categories(category_ids: tuple[Any, ...], categories: set[int] | None) -> bool:
    if not _ints_only(map(type, category_ids)):
        return False
    return categories.issuperset(category_ids) if categories is not None else _valid_ids(category_ids)


def plain_images(raw: list[Any]) -> Batch:
    """`plain_image` of each element of `raw`, all at once when every image is plain."""
    batch = _image_batch(raw) if raw else None
    return batch if batch is not None else ([plain_image(obj) for obj in raw], None)


def _image_batch(raw: list[Any]) -> Batch | None:
    if not _dicts_only(map(type, raw)):
        return None
    shapes = set(map(tuple, raw))
    if not all(_IMAGE_KEYS.issubset(shape) for shape in shapes):
        return None
    ids, file_names, widths, heights = zip(*map(itemgetter("id", "file_name", "width", "height"), raw))
    if not (
        _valid_ids(ids) and _strings_only(map(type, file_names))
        and _ints_only(map(type, widths)) and 0 < min(widths) and max(widths) <= INT32_MAX
        and _ints_only(map(type, heights)) and 0 < min(heights) and max(heights) <= INT32_MAX
    ) or any(map(unsafe_path_problem, file_names)):
        return None
    digests = record_hashes(raw)
    if digests is None:
        return None
    keys = sum(map(len, raw))
    if all(len(shape) == len(_IMAGE_KEYS) for shape in shapes):
        extras: Any = repeat(None)
    else:
        extras = [{key: value for key, value in obj.items() if key not in _IMAGE_KEYS} or None for obj in raw]
        keys += parsed_key_count([value for extra in extras if extra for value in extra.values()])
    records = [
        {"coco_id": coco_id, "file_name": file_name, "width": width, "height": height, "extra": extra, "hash": digest}
        for coco_id, file_name, width, height, extra, digest in zip(ids, file_names, widths, heights, extras, digests)
    ]
    return records, keys


def plain_annotation_batch(
    task: str, images: dict[int, ImageRecord], categories: set[int] | None, keypoint_counts: dict[int, int],
    read_rle: RleReader,
) -> Callable[[list[Any]], Batch]:
    """The batch reader of the annotations of `task`'s files: all at once when every record is
    of the common shape, else `plain_annotations`'s reader on each."""
    single = plain_annotations(task, images, categories, keypoint_counts, read_rle)
    batch: Callable[[list[Any]], Batch | None]
    if task == "captions":
        batch = lambda raw: _caption_batch(raw, images)
    elif task == "labels":
        batch = lambda raw: _label_batch(raw, images, categories)
    else:
        counts = keypoint_counts if task == "person_keypoints" else None
        batch = lambda raw: _object_batch(raw, images, categories, counts, read_rle)

    def read(raw: list[Any]) -> Batch:
        done = batch(raw) if raw else None
        return done if done is not None else ([_or_none(single, obj) for obj in raw], None)
    return read


def _or_none(single: Callable[[Any], AnnotationRecord | None], obj: Any) -> AnnotationRecord | None:
    """A record read by itself; None for one whose RLE is refused: the step-by-step reader
    reports that."""
    try:
        return single(obj)
    except InputError:
        return None


def _caption_batch(raw: list[Any], images: dict[int, ImageRecord]) -> Batch | None:
    if not _shapes_are(raw, _CAPTION_KEYS):
        return None
    ids, image_ids, captions = zip(*map(itemgetter("id", "image_id", "caption"), raw))
    if not (
        _valid_ids(ids) and _known_images(image_ids, images) and _strings_only(map(type, captions))
        and "\x00" not in "".join(captions)
    ):
        return None
    return _one_field_records(raw, ids, image_ids, "caption", "caption", captions)


def _label_batch(raw: list[Any], images: dict[int, ImageRecord], categories: set[int] | None) -> Batch | None:
    if not _shapes_are(raw, _LABEL_KEYS):
        return None
    ids, image_ids, category_ids = zip(*map(itemgetter("id", "image_id", "category_id"), raw))
    if not (_valid_ids(ids) and _known_images(image_ids, images) and _known_categories(category_ids, categories)):
        return None
    return _one_field_records(raw, ids, image_ids, "label", "category_id", category_ids)


def _one_field_records(
    raw: list[Any], ids: Sequence[int], image_ids: Sequence[int], kind: str, field: str, values: Sequence[Any]
) -> Batch | None:
    """The records of checked captions and labels: an id, an image id and one field of their
    own (a caption's `caption`, a label's `category_id`)."""
    digests = record_hashes(raw)
    if digests is None:
        return None
    records = [
        {"coco_id": coco_id, "image_id": image_id, "number_forms": 0, "hash": digest, field: value,
         "kind": kind, "extra": None}
        for coco_id, image_id, value, digest in zip(ids, image_ids, values, digests)
    ]
    return records, 3 * len(raw)


_OBJECT_FIELDS = itemgetter("id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation")
_KEYPOINT_FIELDS = itemgetter("keypoints", "num_keypoints")


def _object_batch(
    raw: list[Any], images: dict[int, ImageRecord], categories: set[int] | None,
    keypoint_counts: dict[int, int] | None, read_rle: RleReader,
) -> Batch | None:
    """Instances, stuff or person_keypoints records (the latter with `keypoint_counts`), checked
    as `_object` checks each."""
    if not _shapes_are(raw, _OBJECT_KEYS if keypoint_counts is None else _KEYPOINT_KEYS):
        return None
    ids, image_ids, category_ids, bboxes, areas, iscrowds, segmentations = zip(*map(_OBJECT_FIELDS, raw))
    if not (
        _valid_ids(ids) and _known_images(image_ids, images) and _known_categories(category_ids, categories)
        and _ints_only(map(type, iscrowds)) and _flags_only(iscrowds)
    ):
        return None
    numbers = _numbers(bboxes, areas)
    if numbers is None or not _plain_polygons(segmentations):
        return None
    if keypoint_counts is not None and not _plain_keypoints(raw, category_ids, keypoint_counts):
        return None
    digests = record_hashes(raw)
    if digests is None:
        return None
    forms, (xs, ys, widths, heights), area_floats = numbers
    columns = (
        ids, image_ids, forms, digests, category_ids, xs, ys, widths, heights, area_floats, iscrowds, segmentations,
    )
    records: list[Any]
    if keypoint_counts is None:
        records = [
            {"coco_id": coco_id, "image_id": image_id, "number_forms": form, "hash": digest,
             "category_id": category_id, "bbox_x": x, "bbox_y": y, "bbox_w": w, "bbox_h": h, "area": area,
             "iscrowd": iscrowd, "polygons": segmentation, "kind": "polygon", "extra": None}
            for coco_id, image_id, form, digest, category_id, x, y, w, h, area, iscrowd, segmentation in zip(*columns)
        ]
    else:
        records = [
            {"coco_id": coco_id, "image_id": image_id, "number_forms": form, "hash": digest,
             "category_id": category_id, "bbox_x": x, "bbox_y": y, "bbox_w": w, "bbox_h": h, "area": area,
             "iscrowd": iscrowd, "polygons": segmentation, "keypoints": keypoints, "num_keypoints": num,
             "kind": "points", "extra": None}
            for coco_id, image_id, form, digest, category_id, x, y, w, h, area, iscrowd, segmentation, keypoints, num
            in zip(*columns, *zip(*map(_KEYPOINT_FIELDS, raw)))
        ]
    masks = _masks(segmentations, ids, image_ids, images, read_rle)
    for index, mask in masks.items():  # a record with an RLE: its fields where the polygons were
        records[index] = None if mask is None else _with_mask(records[index], mask)
    # The keys: each record's own, and the two of each RLE object (its values hold none).
    keys = sum(map(len, raw)) + 2 * len(masks) if None not in masks.values() else None
    return records, keys


def _with_mask(record: dict[str, Any], mask: tuple[bytes, str]) -> dict[str, Any]:
    fields = iter(record.items())
    masked = dict(islice(fields, 11))  # up to iscrowd
    masked["rle"], masked["rle_form"] = mask
    next(fields)  # the polygons
    masked.update(fields)
    if masked["kind"] == "polygon":
        masked["kind"] = "mask"
    return masked


def _masks(
    segmentations: tuple[Any, ...], ids: tuple[int, ...], image_ids: tuple[int, ...],
    images: dict[int, ImageRecord], read_rle: RleReader,
) -> dict[int, tuple[bytes, str] | None]:
    """The RLE of each record that has one, by its index, as `read_rle` reads it (None: refused,
    or not an object of exactly `counts` and `size`: the record is read step by step, which
    names the problem). Compressed strings are decoded and checked together, a group at a time
    (`_covering`); any other, or a string found wanting, is read by `read_rle`."""
    indexes = [index for index, segmentation in enumerate(segmentations) if type(segmentation) is dict]
    masks = dict.fromkeys(indexes)
    together: list[tuple[int, bytes, int]] = []
    indexes_left: list[int] = []  # read by `read_rle`
    for index in indexes:
        segmentation = segmentations[index]
        if segmentation.keys() != _RLE_KEYS:
            continue
        image = images[image_ids[index]]
        counts, size = segmentation["counts"], segmentation["size"]
        if (
            type(counts) is str and counts and counts.isascii() and type(size) is list and len(size) == 2
            and type(size[0]) is int and type(size[1]) is int and size == [image["height"], image["width"]]
        ):
            together.append((index, counts.encode("ascii"), size[0] * size[1]))
        else:
            indexes_left.append(index)
    for (index, encoded, _), covers in zip(together, _covering(together)):
        if covers:
            masks[index] = encoded, RLE_STRING
        else:
            indexes_left.append(index)
    for index in sorted(indexes_left):
        try:
            masks[index] = read_rle(segmentations[index], f"annotation id {ids[index]}", images[image_ids[index]])
        except InputError:
            pass
    return masks


def _covering(strings: list[tuple[int, bytes, int]]) -> list[bool]:
    """Whether each compressed string holds valid runs covering its image (index, string,
    pixels), as `check_runs(decode_string(string), ...)` would find: decoded together, in groups
    of about RLE_GROUP_BYTES (numpy's passes over a group then stay in the cache)."""
    covering: list[bool] = []
    group: list[tuple[int, bytes, int]] = []
    size = 0
    for item in strings:
        group.append(item)
        size += len(item[1])
        if size >= RLE_GROUP_BYTES or item is strings[-1]:
            covering += _group_covering(group)
            group, size = [], 0
    return covering


def _group_covering(strings: list[tuple[int, bytes, int]]) -> list[bool]:
    try:
        runs, offsets = decode_strings([encoded for _, encoded, _ in strings])
    except RleError:
        return [False] * len(strings)
    if not runs.size or runs.min() < 0 or runs.max() >= UINT32_LIMIT:
        return [False] * len(strings)
    totals = np.add.reduceat(runs, offsets[:-1])
    return (totals == np.fromiter((pixels for _, _, pixels in strings), dtype=np.int64)).tolist()


def _numbers(
    bboxes: tuple[Any, ...], areas: tuple[Any, ...]
) -> tuple[list[int], list[list[float]], list[float]] | None:
    """Each record's number_forms bits, as `_bbox_and_area` works them out, the bbox values as
    floats (the x, y, width and height of every record) and the areas as floats; None unless
    every bbox is 4 numbers and every area a number, all within the exact range (which
    `_bbox_and_area` asks only of a bbox holding an integer: a float beyond it sends this batch
    record by record)."""
    if not (_lists_only(map(type, bboxes)) and _fours_only(map(len, bboxes))):
        return None
    kinds = list(map(type, chain.from_iterable(bboxes)))
    forms = list(map(_BBOX_FORMS.get, zip(kinds[0::4], kinds[1::4], kinds[2::4], kinds[3::4])))
    area_kinds = list(map(type, areas))
    if None in forms or not _numbers_only(area_kinds):
        return None
    try:  # numbers only, each as float() reads it
        values = np.fromiter(chain.from_iterable(bboxes), dtype=np.float64, count=len(kinds))
        area_values = np.fromiter(areas, dtype=np.float64, count=len(areas))
    except OverflowError:  # an integer beyond the doubles
        return None
    # Strictly inside: an integer just beyond the limit may round to it.
    if not (-EXACT_FLOAT_LIMIT < values.min() and values.max() < EXACT_FLOAT_LIMIT):
        return None
    if int in area_kinds:
        if not (-EXACT_FLOAT_LIMIT < area_values.min() and area_values.max() < EXACT_FLOAT_LIMIT):
            return None
        forms = list(map(or_, forms, (_AREA_BIT if kind is int else 0 for kind in area_kinds)))
    # -0.0 is told apart from 0.0 by its sign alone; without a negative sign there is none.
    if np.signbit(values).any() or np.signbit(area_values).any():
        zeros = compress(range(len(forms)), map(or_, map(contains, bboxes, repeat(0.0)), map(_is_zero, areas)))
        for index in zeros:
            for bit, value in zip(_BBOX_BITS, bboxes[index]):
                if value == 0.0 and type(value) is float and math.copysign(1.0, value) < 0:
                    forms[index] |= bit << NEGATIVE_ZERO_SHIFT
            area = areas[index]
            if area == 0.0 and type(area) is float and math.copysign(1.0, area) < 0:
                forms[index] |= _AREA_BIT << NEGATIVE_ZERO_SHIFT
    floats = values.tolist()
    return forms, [floats[at::4] for at in range(4)], area_values.tolist()


def _plain_polygons(segmentations: tuple[Any, ...]) -> bool:
    """Every segmentation is an RLE object or polygons as `_object` accepts them."""
    kinds = list(map(type, segmentations))
    if not _geometry_only(kinds):
        return False
    polygons = list(compress(segmentations, map(_is_list, kinds)))
    if not polygons:
        return True
    if not min(map(len, polygons)):
        return False
    parts = list(chain.from_iterable(polygons))
    if not _lists_only(map(type, parts)):
        return False
    lengths = list(map(len, parts))
    return min(lengths) >= 6 and not any(map(_odd, lengths)) and _numbers_only(map(type, chain.from_iterable(parts)))


def _plain_keypoints(raw: list[Any], category_ids: tuple[Any, ...], keypoint_counts: dict[int, int]) -> bool:
    keypoints, nums = zip(*map(_KEYPOINT_FIELDS, raw))
    if not (
        _lists_only(map(type, keypoints)) and _numbers_only(map(type, chain.from_iterable(keypoints)))
        and _ints_only(map(type, nums)) and 0 <= min(nums) and max(nums) <= INT32_MAX
    ):
        return False
    expected = (3 * keypoint_counts.get(category_id, 0) for category_id in category_ids)
    return not any(len(points) % 3 or (wanted and len(points) != wanted) for points, wanted in zip(keypoints, expected))
