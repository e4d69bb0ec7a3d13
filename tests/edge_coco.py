"""A small held-aside COCO folder of edge cases for the export options, generated with numpy,
Pillow and pycocotools (independent of dsrepo): two subsets, sub-folder file names, PNG
images, crowd and non-crowd annotations as multi-part polygons, uncompressed and compressed
RLE, overlapping instances, one instance covered entirely, attributes, and a captions file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

HEIGHT, WIDTH = 24, 32
CATEGORIES = [{"id": 1, "name": "cat", "supercategory": "animal"}, {"id": 3, "name": "dog", "supercategory": "animal"}]


def _rle(mask: np.ndarray, compressed: bool) -> dict[str, Any]:
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        return {"counts": encoded["counts"].decode("ascii"), "size": [HEIGHT, WIDTH]}
    flat = mask.T.ravel()
    runs, value, count = [], False, 0
    for pixel in flat:
        if bool(pixel) != value:
            runs.append(count)
            value, count = bool(pixel), 0
        count += 1
    runs.append(count)
    return {"counts": runs, "size": [HEIGHT, WIDTH]}


def _annotations(image_id: int, first_id: int) -> list[dict[str, Any]]:
    crowd = np.zeros((HEIGHT, WIDTH), bool)
    crowd[2:9, 20:30] = True
    blob = np.zeros((HEIGHT, WIDTH), bool)
    blob[12:20, 4:14] = True
    blob[13:15, 11:13] = False  # a hole
    records = [
        {"segmentation": [[2, 2, 12, 2, 12, 10, 2, 10], [20, 14, 28, 14, 24, 22]], "iscrowd": 0,
         "category_id": 1, "attributes": {"occluded": False}},
        {"segmentation": [[8, 6, 16, 6, 16, 14, 8, 14]], "iscrowd": 0, "category_id": 3,
         "attributes": {"z_order": 1}},
        {"segmentation": _rle(crowd, compressed=False), "iscrowd": 1, "category_id": 3},
        {"segmentation": _rle(blob, compressed=True), "iscrowd": 0, "category_id": 1},
        {"segmentation": [[5, 14, 9, 14, 9, 17, 5, 17]], "iscrowd": 0, "category_id": 3,
         "attributes": {"z_order": -1}},  # under the blob: cropping leaves it nothing
    ]
    out = []
    for offset, record in enumerate(records):
        rle = _pixels_rle(record["segmentation"])
        out.append(dict(record, id=first_id + offset, image_id=image_id,
                        area=float(coco_mask.area(rle)), bbox=[float(v) for v in coco_mask.toBbox(rle)]))
    return out


def _pixels_rle(segmentation: Any) -> dict[str, Any]:
    if isinstance(segmentation, list):
        return coco_mask.merge(coco_mask.frPyObjects(segmentation, HEIGHT, WIDTH))
    if isinstance(segmentation["counts"], list):
        return coco_mask.frPyObjects(segmentation, HEIGHT, WIDTH)
    return segmentation


def pixels(segmentation: Any) -> np.ndarray:
    """What pycocotools draws for a segmentation of this dataset's image size."""
    return coco_mask.decode(_pixels_rle(segmentation)).astype(bool)


def make_edge_dataset(root: Path) -> Path:
    """Write the dataset under `root`; returns `root`."""
    rng = np.random.default_rng(7)
    image_id = 1
    for subset in ("train", "val"):
        images, annotations, captions = [], [], []
        for index, file_name in enumerate(("sub/a.png", "b.png")):
            target = root / "images" / subset / file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(target)
            images.append({"id": image_id, "file_name": file_name, "height": HEIGHT, "width": WIDTH})
            annotations += _annotations(image_id, 100 * image_id)
            captions.append({"id": image_id, "image_id": image_id, "caption": f"{subset} {index}"})
            image_id += 1
        folder = root / "annotations"
        folder.mkdir(parents=True, exist_ok=True)
        document = {"images": images, "categories": CATEGORIES, "annotations": annotations}
        (folder / f"instances_{subset}.json").write_text(json.dumps(document))
        (folder / f"captions_{subset}.json").write_text(json.dumps({"images": images, "annotations": captions}))
    return root


def annotations_by_id(path: Path) -> dict[int, dict[str, Any]]:
    return {record["id"]: record for record in json.loads(path.read_text())["annotations"]}
