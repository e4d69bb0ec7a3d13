"""Annotation rows for the transform tests: read from COCO JSON as the store holds them,
written back as the export writes them, and drawn by pycocotools (the oracle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from repo.coco.reader import read_task_document
from repo.coco.writer import annotation_object
from repo.model.policy import ErrorPolicy
from repo.model.records import ANNOTATION_FIELDS

Entry = tuple[dict[str, Any], int, int, int]  # row, image id, height, width


def read_rows(document: dict[str, Any], task: str = "instances") -> list[Entry]:
    """Each annotation of a COCO document as a row with every column (as the store's rows)."""
    task_file = read_task_document(document, "test.json", task, "val", "test.json", ErrorPolicy())
    sizes = {image["coco_id"]: (image["height"], image["width"]) for image in task_file.images}
    rows = [{name: record.get(name) for name in ANNOTATION_FIELDS} for record in task_file.annotations]
    return [(row, record["image_id"], *sizes[record["image_id"]]) for row, record in zip(rows, task_file.annotations)]


def read_file_rows(path: Path, task: str = "instances") -> list[Entry]:
    return read_rows(json.loads(path.read_text()), task)


def written(row: Any, image_id: int, height: int, width: int) -> dict[str, Any]:
    """The annotation as the export writes it, through JSON."""
    return json.loads(json.dumps(annotation_object(row, image_id, height, width)))


def coco_pixels(segmentation: Any, height: int, width: int) -> np.ndarray:
    """What pycocotools draws for a COCO segmentation (annToRLE's three cases)."""
    if isinstance(segmentation, list):
        rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):
        rle = coco_mask.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return coco_mask.decode(rle).astype(bool)


def row_pixels(row: Any, height: int, width: int) -> np.ndarray:
    return coco_pixels(written(row, 1, height, width)["segmentation"], height, width)


def one_image(annotations: list[dict[str, Any]], height: int = 40, width: int = 50) -> dict[str, Any]:
    """An instances document of one image (id 1) and one category (id 1)."""
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "height": height, "width": width}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [dict({"image_id": 1, "category_id": 1}, **annotation) for annotation in annotations],
    }


def rle_of(mask: np.ndarray, compressed: bool) -> dict[str, Any]:
    """A COCO RLE object of a mask, by pycocotools (compressed) or by numpy (uncompressed)."""
    if compressed:
        return {"counts": coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode(), "size": list(mask.shape)}
    flat = mask.T.ravel()
    edges = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]))
    runs = np.diff(edges).tolist()
    return {"counts": ([0] + runs) if flat[0] else runs, "size": list(mask.shape)}
