"""--crop-covered: later (or higher z_order) non-crowd segments keep shared pixels; numpy and
pycocotools are the oracles."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask

from helpers import DATA
from repo.transforms.covered import crop_covered
from rows import coco_pixels, one_image, read_file_rows, read_rows, rle_of, row_pixels, written

REAL_INSTANCES = DATA / "panopticapi_sample" / "coco" / "annotations" / "instances_val2017.json"


def _square(x: float, y: float, size: float) -> list[float]:
    return [x, y, x + size, y, x + size, y + size, x, y + size]


def _owners(rows, height, width) -> np.ndarray:
    """Who should keep each pixel: among the non-crowd annotations covering it, the one with
    the highest (z_order, position)."""
    best = np.full((height, width), -1)
    rank = np.full((height, width), -np.inf)
    for position, row in enumerate(rows):
        if row.get("iscrowd") == 1 or not (row.get("polygons") or row.get("rle") is not None):
            continue
        z = (row.get("attributes") or {}).get("z_order", 0)
        score = z * 10_000 + position
        covered = row_pixels(row, height, width) & (score > rank)
        best[covered], rank[covered] = position, score
    return best


def test_later_annotations_keep_the_pixels_they_share():
    stacked = read_rows(one_image([
        {"id": 1, "iscrowd": 0, "area": 400, "bbox": [0, 0, 20, 20], "segmentation": [_square(0, 0, 20)]},
        {"id": 2, "iscrowd": 0, "area": 100, "bbox": [10, 10, 10, 10], "segmentation": [_square(10, 10, 10)]},
        {"id": 3, "iscrowd": 0, "area": 25, "bbox": [12, 12, 5, 5], "segmentation": [_square(12, 12, 5)],
         "attributes": {"z_order": -1}},  # below both: covered entirely by 2
        {"id": 4, "iscrowd": 1, "area": 2500, "bbox": [0, 0, 50, 40], "segmentation": [_square(0, 0, 40)]},
        {"id": 5, "iscrowd": 0, "area": 10, "bbox": [30, 30, 5, 2]},  # a box: not involved
    ]))
    rows = [row for row, *_ in stacked]
    result = crop_covered(rows, 40, 50)
    assert [row["coco_id"] for row in result.emptied] == [3]
    kept = {row["coco_id"]: row for row in result.rows}
    assert list(kept) == [1, 2, 4, 5]
    assert kept[2] is rows[1] and kept[4] is rows[3] and kept[5] is rows[4]  # untouched
    first = written(kept[1], 1, 40, 50)
    assert isinstance(first["segmentation"], list)  # a polygon stays a polygon
    expected = np.zeros((40, 50), dtype=bool)
    expected[0:20, 0:20] = True
    expected[10:20, 10:20] = False
    assert np.array_equal(coco_pixels(first["segmentation"], 40, 50), expected)
    assert (first["area"], first["bbox"]) == (300, [0, 0, 20, 20])


def test_random_stacks_against_a_numpy_oracle():
    rng = np.random.default_rng(7)
    for _ in range(40):
        height, width = 30, 40
        annotations = []
        for coco_id in range(1, int(rng.integers(2, 8))):
            x, y, size = (float(v) for v in rng.uniform(0, 25, 3))
            annotation = {"id": coco_id, "iscrowd": int(rng.random() < 0.2), "area": 1.5, "bbox": [x, y, size, size]}
            if rng.random() < 0.5:
                annotation["segmentation"] = [_square(x, y, size + 1), _square(x + 3, y + 8, 4)]
            else:
                mask = np.zeros((height, width), dtype=bool)
                mask[int(y):int(y + size) + 1, int(x):int(x + size) + 1] = True
                annotation["segmentation"] = rle_of(mask, compressed=bool(rng.random() < 0.5))
            if rng.random() < 0.3:
                annotation["attributes"] = {"z_order": int(rng.integers(-2, 3))}
            annotations.append(annotation)
        rows = [row for row, *_ in read_rows(one_image(annotations, height, width))]
        owners = _owners(rows, height, width)
        result = crop_covered(rows, height, width)
        by_id = {row["coco_id"]: row for row in result.rows}
        assert {row["coco_id"] for row in result.emptied} | set(by_id) == {row["coco_id"] for row in rows}
        for position, row in enumerate(rows):
            original = row_pixels(row, height, width)
            if row.get("iscrowd") == 1:
                assert by_id[row["coco_id"]] is row
                continue
            expected = owners == position
            if not expected.any():
                assert row in result.emptied
                continue
            new = by_id[row["coco_id"]]
            assert np.array_equal(row_pixels(new, height, width), expected)
            if np.array_equal(expected, original):
                assert new is row
            else:
                obj = written(new, 1, height, width)
                rle = coco_mask.encode(np.asfortranarray(expected.astype(np.uint8)))
                assert obj["area"] == int(coco_mask.area(rle))
                assert obj["bbox"] == [int(v) for v in coco_mask.toBbox(rle)]
                assert type(obj["segmentation"]) is type(written(row, 1, height, width)["segmentation"])


def test_real_panoptic_instances_do_not_overlap_and_stay_as_they_are():
    entries = read_file_rows(REAL_INSTANCES)
    for image_id in {image_id for _, image_id, _, _ in entries}:
        rows = [row for row, owner, _, _ in entries if owner == image_id]
        height, width = next((h, w) for _, owner, h, w in entries if owner == image_id)
        result = crop_covered(rows, height, width)
        assert result.emptied == [] and all(a is b for a, b in zip(result.rows, rows))
