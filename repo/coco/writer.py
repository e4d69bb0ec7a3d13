"""Turning stored records back into COCO's JSON objects, and writing a task file.

The inverse of `reader`: every lifted field goes back under its COCO key, in the type the file
had (integers stay integers, RLE keeps its form), and `extra` is merged back in. Key order
inside an object follows COCO's usual order, then the extra keys in their original order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from repo.coco.rle import runs_as_list
from repo.model.hashing import record_hash, segment_hash
from repo.model.jsonio import ObjectStreamWriter
from repo.model.records import BBOX_FIELDS, INTEGER_BIT, NEGATIVE_ZERO_SHIFT, RLE_LIST, ImageRecord

StoredRow = Mapping[str, Any]  # a stored row, or a dict with its columns


def _number(row: StoredRow, name: str) -> int | float:
    value = row[name]
    flag = INTEGER_BIT[name]
    if row["number_forms"] & flag:
        return int(value)
    return -0.0 if row["number_forms"] & (flag << NEGATIVE_ZERO_SHIFT) else value


def _with_extra(obj: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    if extra:
        obj.update(extra)
    return obj


def image_object(coco_id: int, file_name: str, width: int, height: int, extra: dict[str, Any] | None) -> dict[str, Any]:
    return _with_extra({"id": coco_id, "width": width, "height": height, "file_name": file_name}, extra)


def image_record_object(image: ImageRecord) -> dict[str, Any]:
    """The image object a file wrote for a validated image record."""
    return image_object(image["coco_id"], image["file_name"], image["width"], image["height"], image["extra"])


def category_object(row: StoredRow) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": row["coco_id"], "name": row["name"]}
    if row["supercategory"] is not None:
        obj["supercategory"] = row["supercategory"]
    return _with_extra(obj, row["extra"])


def segmentation_object(row: StoredRow, height: int, width: int) -> Any:
    if row["polygons"] is not None:
        return row["polygons"]
    counts = bytes(row["rle"])
    return {
        "counts": runs_as_list(counts) if row["rle_form"] == RLE_LIST else counts.decode("ascii"),
        "size": [height, width],
    }


def annotation_object(row: StoredRow, image_id: int, height: int, width: int) -> dict[str, Any]:
    """An annotation record of any task but panoptic, with the image id its file uses."""
    obj: dict[str, Any] = {}
    if row["coco_id"] is not None:
        obj["id"] = row["coco_id"]
    obj["image_id"] = image_id
    if row["category_id"] is not None:
        obj["category_id"] = row["category_id"]
    if row["polygons"] is not None or row["rle"] is not None:
        obj["segmentation"] = segmentation_object(row, height, width)
    _geometry_fields(obj, row)
    if row["keypoints"] is not None:
        obj["keypoints"] = row["keypoints"]
    if row["num_keypoints"] is not None:
        obj["num_keypoints"] = row["num_keypoints"]
    if row["caption"] is not None:
        obj["caption"] = row["caption"]
    _optional_fields(obj, row)
    return _with_extra(obj, row["extra"])


def segment_object(row: StoredRow) -> dict[str, Any]:
    """One entry of a panoptic record's `segments_info`."""
    obj: dict[str, Any] = {"id": row["coco_id"], "category_id": row["category_id"]}
    _geometry_fields(obj, row)
    _optional_fields(obj, row)
    return _with_extra(obj, row["extra"])


def _geometry_fields(obj: dict[str, Any], row: StoredRow) -> None:
    if row["area"] is not None:
        obj["area"] = _number(row, "area")
    if row["bbox_x"] is not None:
        obj["bbox"] = [_number(row, name) for name in BBOX_FIELDS]
    if row["iscrowd"] is not None:
        obj["iscrowd"] = row["iscrowd"]


def _optional_fields(obj: dict[str, Any], row: StoredRow) -> None:
    if row["score"] is not None:
        obj["score"] = _number(row, "score")
    if row["attributes"] is not None:
        obj["attributes"] = row["attributes"]


def panoptic_object(image_id: int, png_name: str, extra: dict[str, Any] | None, segments: list[dict[str, Any]]) -> dict[str, Any]:
    return _with_extra({"image_id": image_id, "file_name": png_name, "segments_info": segments}, extra)


def write_task_file(
    path: Path,
    layout: list[str],
    sections: Mapping[str, Any],
    images: Iterable[dict[str, Any]],
    annotations: Iterable[dict[str, Any]],
) -> tuple[int, int]:
    """Write one task file with its top-level keys in `layout` order; lists are streamed.

    `sections` holds every top-level value but the two big lists. Returns the numbers of
    images and annotations written.
    """
    counts = [0, 0]
    with open(path, "wb") as out:
        writer = ObjectStreamWriter(out)
        writer.begin()
        for key in layout:
            if key == "images":
                counts[0] = writer.array(key, images)
            elif key == "annotations":
                counts[1] = writer.array(key, annotations)
            else:
                writer.value(key, sections[key])
        writer.end()
    return counts[0], counts[1]


def category_hash(row: StoredRow) -> bytes:
    """The content hash of a stored category, as the reader computes it for a fresh record."""
    return record_hash(category_object(row))


def annotation_hash(row: StoredRow, task: str, image_id: int, height: int, width: int) -> bytes:
    """The content hash of a stored annotation, as the reader computes it for a fresh record.

    A panoptic segment is its `segments_info` record and its pixels together.
    """
    if task == "panoptic":
        return segment_hash(record_hash(segment_object(row)), bytes(row["rle"]))
    return record_hash(annotation_object(row, image_id, height, width))
