"""Generated COCO files over the real sample image 142238, for the reading, render and web tests.

The bundled real sample has RLE masks (crowd ones too) and a panoptic PNG but no polygon,
keypoint or caption: these files add them, on the same photograph, in a corner (x 100-220,
y 10-95) where the sample annotates no person, so that tests can tell their pixels apart.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from helpers import DATA

PANOPTIC = DATA / "panopticapi_sample" / "coco"
IMAGE = "000000142238.jpg"
IMAGE_ID = 142238
WIDTH, HEIGHT = 640, 427

# COCO's person keypoints and skeleton (1-based indices), as person_keypoints_val2017.json has them.
KEYPOINT_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
]
SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9], [8, 10], [9, 11],
    [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]
POLYGON = [130.0, 20.0, 190.0, 20.0, 210.0, 55.0, 190.0, 90.0, 130.0, 90.0, 110.0, 55.0]
# (x, y, visibility) per keypoint: 2 visible, 1 occluded, 0 not labelled (far from the rest).
# All below y 40, clear of the label tag drawn at the box's top-left corner (110, 20).
POINTS = [
    (160, 46, 2), (155, 43, 2), (165, 43, 2), (148, 45, 1), (172, 45, 1), (145, 55, 2), (175, 55, 2),
    (135, 64, 2), (185, 64, 2), (128, 74, 2), (192, 74, 2), (150, 70, 2), (170, 70, 2), (148, 79, 2),
    (172, 79, 2), (147, 86, 2), (400, 40, 0),
]
CAPTIONS = [
    "A rugby line-out: players lift a jumper to catch the ball while the others wait on the wet grass.",
    "Zwölf Spieler, ein Ball — und ein Baum im Hintergrund.",
]


def keypoints_file() -> dict[str, Any]:
    keypoints = [float(v) if i % 3 < 2 else v for i, v in enumerate(c for point in POINTS for c in point)]
    return {
        "info": {"description": "generated over the panopticapi sample image 142238"},
        "licenses": [],
        "images": [{"id": IMAGE_ID, "width": WIDTH, "height": HEIGHT, "file_name": IMAGE}],
        "annotations": [{
            "id": 900001, "image_id": IMAGE_ID, "category_id": 1, "iscrowd": 0, "segmentation": [POLYGON],
            "area": 6300.0, "bbox": [110.0, 20.0, 100.0, 70.0], "keypoints": keypoints,
            "num_keypoints": sum(1 for point in POINTS if point[2] > 0),
        }],
        "categories": [{
            "id": 1, "name": "person", "supercategory": "person", "keypoints": KEYPOINT_NAMES, "skeleton": SKELETON,
        }],
    }


def captions_file() -> dict[str, Any]:
    return {
        "info": {}, "licenses": [],
        "images": [{"id": IMAGE_ID, "width": WIDTH, "height": HEIGHT, "file_name": IMAGE}],
        "annotations": [
            {"id": 800000 + number, "image_id": IMAGE_ID, "caption": text} for number, text in enumerate(CAPTIONS)
        ],
    }


def write_extras(folder: Path) -> Path:
    """A COCO folder with the keypoints and captions files over image 142238 (and the image)."""
    annotations = folder / "annotations"
    annotations.mkdir(parents=True)
    (annotations / "person_keypoints_val2017.json").write_text(json.dumps(keypoints_file()), encoding="utf-8")
    (annotations / "captions_val2017.json").write_text(json.dumps(captions_file()), encoding="utf-8")
    images = folder / "images" / "val2017"
    images.mkdir(parents=True)
    shutil.copyfile(PANOPTIC / "images" / "val2017" / IMAGE, images / IMAGE)
    return folder


def instances_with_label(folder: Path, label: str) -> Path:
    """One 64x48 image (no file) with one box of category `label`: a hostile name for the web tests."""
    annotations = folder / "annotations"
    annotations.mkdir(parents=True)
    data = {
        "info": {}, "licenses": [],
        "images": [{"id": 1, "width": 64, "height": 48, "file_name": "hostile.jpg"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 200.0,
                         "bbox": [10.0, 10.0, 20.0, 10.0], "segmentation": [[10.0, 10.0, 30.0, 10.0, 30.0, 20.0, 10.0, 20.0]]}],
        "categories": [{"id": 1, "name": label, "supercategory": ""}],
    }
    (annotations / "instances_hostile.json").write_text(json.dumps(data), encoding="utf-8")
    return folder
