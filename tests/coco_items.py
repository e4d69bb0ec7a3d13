"""Test-side input for the format writers: a COCO JSON file read with plain `json` into
`ExportItem`s, independently of dsrepo's reader and store."""

from __future__ import annotations

import json
from pathlib import Path

from repo.formats.exportable import BBOX, MASK, POLYGON, ExportAnnotation, ExportItem


def coco_items(json_path: Path, image_dir: Path | None, subset: str) -> tuple[list[str], list[ExportItem]]:
    """The file's category names in order, and its images as items with their annotations."""
    data = json.loads(json_path.read_text(encoding="utf-8"))
    names = {category["id"]: category["name"] for category in data["categories"]}
    by_image: dict[int, list[ExportAnnotation]] = {image["id"]: [] for image in data["images"]}
    for annotation in data.get("annotations", []):
        by_image[annotation["image_id"]].append(export_annotation(annotation, names))
    items = [
        ExportItem(
            subset, image["file_name"], image["width"], image["height"], tuple(by_image[image["id"]]),
            image_dir / image["file_name"] if image_dir else None,
        )
        for image in data["images"]
    ]
    return [category["name"] for category in data["categories"]], items


def export_annotation(annotation: dict, names: dict[int, str]) -> ExportAnnotation:
    segmentation = annotation.get("segmentation")
    polygons = rle = None
    if isinstance(segmentation, list) and segmentation:
        polygons = segmentation
    elif isinstance(segmentation, dict):
        counts = segmentation["counts"]
        if isinstance(counts, list):
            from pycocotools import mask as coco_mask

            height, width = segmentation["size"]
            counts = coco_mask.frPyObjects(segmentation, height, width)["counts"]
        rle = counts.encode("ascii") if isinstance(counts, str) else counts
    kind = POLYGON if polygons else MASK if rle else BBOX
    return ExportAnnotation(
        kind, names[annotation["category_id"]], tuple(annotation["bbox"]) if "bbox" in annotation else None,
        bool(annotation.get("iscrowd", 0)), polygons, rle,
    )
