"""Pixel operations of the export options: rasterising, RLE, tracing; pycocotools is the oracle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from helpers import DATA
from repo.transforms import masks

REAL_INSTANCES = DATA / "panopticapi_sample" / "coco" / "annotations" / "instances_val2017.json"


def _drawn_by_pycocotools(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    if not polygons:
        return np.zeros((height, width), dtype=bool)
    return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))).astype(bool)


def _random_masks(count: int, seed: int, largest: int = 30):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        height, width = (int(v) for v in rng.integers(1, largest, 2))
        yield rng.random((height, width)) < rng.random()


def _real_masks():
    document = json.loads(REAL_INSTANCES.read_text())
    for annotation in document["annotations"]:
        height, width = annotation["segmentation"]["size"]
        yield annotation["id"], coco_mask.decode(annotation["segmentation"]).astype(bool), height, width


def test_encode_and_decode_agree_with_pycocotools():
    for mask in _random_masks(500, seed=1):
        expected = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]
        assert masks.encode(mask) == expected
        assert np.array_equal(masks.decode(expected, *mask.shape), mask)


def test_area_and_bbox_are_pycocotools_pixel_count_and_box():
    mask = np.zeros((6, 9), dtype=bool)
    mask[1:4, 2:7] = True
    mask[5, 8] = True
    area, box = masks.area_and_bbox(masks.encode(mask), 6, 9)
    assert (area, box) == (16, [2, 1, 7, 5])


def test_rasterise_draws_what_pycocotools_draws():
    """Random polygons, several parts, vertices outside the image, integer and half coordinates."""
    rng = np.random.default_rng(3)
    for _ in range(2000):
        height, width = (int(v) for v in rng.integers(1, 60, 2))
        parts = []
        for _ in range(int(rng.integers(1, 4))):
            count = int(rng.integers(3, 9))
            xs, ys = rng.uniform(-0.3 * width, 1.3 * width, count), rng.uniform(-0.3 * height, 1.3 * height, count)
            if rng.random() < 0.3:
                xs, ys = np.round(xs * 2) / 2, np.round(ys * 2) / 2
            parts.append(np.stack([xs, ys], axis=1).ravel().tolist())
        assert np.array_equal(masks.rasterise(parts, height, width), _drawn_by_pycocotools(parts, height, width))


def test_the_numpy_drawing_for_huge_images_is_pycocotools_pixel_for_pixel():
    """Images of 2^24 pixels and more are drawn by a numpy port of pycocotools' rleFrPoly
    (its encoder overflows on their runs); on small images it must agree with pycocotools
    everywhere: sampling ties, repeated vertices, vertices outside the image."""
    rng = np.random.default_rng(4)
    for case in range(3000):
        height, width = (int(v) for v in rng.integers(1, 60, 2))
        count = int(rng.integers(3, 9))
        xs, ys = rng.uniform(-0.3 * width, 1.3 * width, count), rng.uniform(-0.3 * height, 1.3 * height, count)
        if case % 3 == 0:
            xs, ys = np.round(xs, 1), np.round(ys, 1)
        elif case % 3 == 1:
            xs[1], ys[1] = xs[0], ys[0]
        part = np.stack([xs, ys], axis=1)
        drawn = masks._rasterise_in_numpy([part], height, width)
        assert np.array_equal(drawn, _drawn_by_pycocotools([part.ravel().tolist()], height, width)), case


def test_polygons_on_a_huge_image():
    """A 5000x4000 image (2^24 pixels and more) takes the numpy drawing; a rectangle with
    whole-pixel corners covers exactly the pixels inside it."""
    height, width = 4000, 5000
    part = [100.0, 0.0, 4200.0, 0.0, 4200.0, 4000.0, 100.0, 4000.0]
    mask = masks.rasterise([part], height, width)
    assert mask[:, 100:4200].all() and not mask[:, :100].any() and not mask[:, 4200:].any()
    counts = masks.encode(mask)
    assert masks.area_and_bbox(counts, height, width) == (4100 * 4000, [100, 0, 4100, 4000])


def test_a_polygon_on_an_absurdly_large_image_is_refused():
    with pytest.raises(masks.MaskError, match="too large to draw polygons on"):
        masks.rasterise([[0, 0, 5, 0, 5, 5]], 1 << 16, 1 << 15)


def test_tracing_draws_back_exactly_the_mask():
    """Random masks: many parts, holes, islands in holes, diagonal touches, image borders."""
    for mask in _random_masks(3000, seed=2):
        polygons = masks.trace(mask)
        assert all(len(part) >= 6 and len(part) % 2 == 0 for part in polygons)
        assert np.array_equal(_drawn_by_pycocotools(polygons, *mask.shape), mask)


def test_tracing_real_coco_masks_is_exact():
    for annotation_id, mask, height, width in _real_masks():
        polygons = masks.trace(mask)
        assert np.array_equal(_drawn_by_pycocotools(polygons, height, width), mask), annotation_id


def test_a_hole_is_joined_to_its_outline_by_a_seam():
    mask = np.zeros((10, 10), dtype=bool)
    mask[1:9, 1:9] = True
    mask[3:6, 3:6] = False  # a hole
    mask[4, 4] = True  # an island inside it
    polygons = masks.trace(mask)
    assert len(polygons) == 2  # the ring with its hole, and the island
    assert np.array_equal(_drawn_by_pycocotools(polygons, 10, 10), mask)
    # Each part on its own is what pycocotools unions: the island alone is one pixel.
    areas = sorted(int(coco_mask.area(coco_mask.frPyObjects([part], 10, 10))[0]) for part in polygons)
    assert areas == [1, 64 - 9]


def test_a_single_pixel_is_a_unit_square():
    mask = np.zeros((4, 5), dtype=bool)
    mask[2, 3] = True
    assert masks.trace(mask) == [[3.0, 2.0, 3.0, 3.0, 4.0, 3.0, 4.0, 2.0]]


def test_an_empty_mask_has_no_polygons():
    assert masks.trace(np.zeros((3, 3), dtype=bool)) == []


def test_simplifying_trades_points_for_pixels():
    for _, mask, height, width in list(_real_masks())[:10]:
        exact, simple = masks.trace(mask), masks.trace(mask, tolerance=1.0)
        assert sum(map(len, simple)) < sum(map(len, exact))
        assert masks.iou(_drawn_by_pycocotools(simple, height, width), mask) > 0.5


def test_iou():
    first, second = np.zeros((2, 2), dtype=bool), np.zeros((2, 2), dtype=bool)
    assert masks.iou(first, second) == 1.0
    first[0, 0] = second[0, 0] = second[1, 1] = True
    assert masks.iou(first, second) == 0.5
