"""--segmentation-mode: masks from polygons and polygons from masks, judged by pycocotools."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from helpers import DATA
from repo.model.records import RLE_LIST, RLE_STRING
from repo.transforms.segmentation import IouTally, convert_segmentation
from rows import coco_pixels, one_image, read_file_rows, read_rows, rle_of, written

REAL_INSTANCES = DATA / "panopticapi_sample" / "coco" / "annotations" / "instances_val2017.json"
DATUMARO_INSTANCES = DATA / "datumaro_coco" / "coco_instances" / "annotations" / "instances_val.json"
DATUMARO_KEYPOINTS = DATA / "datumaro_coco" / "coco_person_keypoints" / "annotations" / "person_keypoints_val.json"


def _holed_mask() -> np.ndarray:
    mask = np.zeros((40, 50), dtype=bool)
    mask[5:30, 5:40] = True
    mask[10:20, 10:20] = False  # a hole
    mask[14:16, 14:16] = True  # an island in it
    mask[32:38, 42:48] = True  # a second part
    return mask


GENERATED = one_image([
    # two overlapping triangles and a square: parts are unioned
    {"id": 1, "iscrowd": 0, "area": 300.5, "bbox": [2, 2, 30, 20],
     "segmentation": [[2, 2, 30, 2, 16, 22], [10, 5, 32, 5, 21, 20.5], [40.5, 30.5, 45.5, 30.5, 45.5, 35.5, 40.5, 35.5]]},
    {"id": 2, "iscrowd": 1, "area": 12, "bbox": [1, 1, 4, 3], "segmentation": [[1.2, 1.7, 5.4, 1.1, 4.9, 4.3, 0.8, 3.9]]},
    {"id": 3, "iscrowd": 0, "area": 100, "bbox": [0, 0, 10, 10],
     "segmentation": rle_of(_holed_mask(), compressed=True)},
    {"id": 4, "iscrowd": 1, "area": 100, "bbox": [0, 0, 10, 10],
     "segmentation": rle_of(_holed_mask(), compressed=False)},
    {"id": 5, "iscrowd": 0, "area": 6, "bbox": [1, 2, 3, 2]},  # a box alone
    {"id": 6, "area": 6, "bbox": [1, 2, 3, 2], "segmentation": [[1, 2, 4, 2, 4, 4]]},  # no iscrowd
])


def test_mask_mode_writes_the_pixels_pycocotools_draws_for_the_polygons():
    rows = read_rows(GENERATED) + read_file_rows(DATUMARO_INSTANCES)
    checked = 0
    for row, image_id, height, width in rows:
        if not row.get("polygons"):
            continue
        before = written(row, image_id, height, width)
        after = written(convert_segmentation(row, "mask", height, width), image_id, height, width)
        assert isinstance(after["segmentation"]["counts"], list)  # uncompressed, as COCO's crowd annotations
        assert after["segmentation"]["size"] == [height, width]
        assert np.array_equal(coco_pixels(after["segmentation"], height, width), coco_pixels(before["segmentation"], height, width))
        assert {k: v for k, v in after.items() if k != "segmentation"} == {k: v for k, v in before.items() if k != "segmentation"}
        checked += 1
    assert checked == 4


def test_mask_mode_compressed_is_pycocotools_own_string():
    for row, image_id, height, width in read_rows(GENERATED):
        if not row.get("polygons"):
            continue
        after = written(convert_segmentation(row, "mask", height, width, rle_form=RLE_STRING), image_id, height, width)
        polygons = written(row, image_id, height, width)["segmentation"]
        expected = coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))["counts"].decode()
        assert after["segmentation"]["counts"] == expected


def test_stored_masks_keep_their_form_unless_a_form_is_asked_for():
    rows = {row["coco_id"]: (row, height, width) for row, _, height, width in read_rows(GENERATED)}
    for coco_id, form in ((3, RLE_STRING), (4, RLE_LIST)):
        row, height, width = rows[coco_id]
        assert convert_segmentation(row, "mask", height, width) is row
        other = RLE_LIST if form == RLE_STRING else RLE_STRING
        changed = convert_segmentation(row, "mask", height, width, rle_form=other)
        assert changed["rle_form"] == other and changed["rle"] == row["rle"]
        segmentation = written(changed, 1, height, width)["segmentation"]
        assert isinstance(segmentation["counts"], list if other == RLE_LIST else str)
        assert np.array_equal(coco_pixels(segmentation, height, width), _holed_mask())


@pytest.mark.parametrize("path", [REAL_INSTANCES, DATUMARO_INSTANCES], ids=["panopticapi", "datumaro"])
def test_polygons_mode_draws_back_every_real_mask_exactly(path):
    tally = IouTally()
    masks_seen = 0
    for row, image_id, height, width in read_file_rows(path):
        if row.get("rle") is None:
            continue
        masks_seen += 1
        before = written(row, image_id, height, width)
        after = written(convert_segmentation(row, "polygons", height, width, tally=tally), image_id, height, width)
        assert isinstance(after["segmentation"], list)
        assert np.array_equal(coco_pixels(after["segmentation"], height, width), coco_pixels(before["segmentation"], height, width))
        # the pixels are the same, so area, bbox and iscrowd stay as stored
        assert {k: v for k, v in after.items() if k != "segmentation"} == {k: v for k, v in before.items() if k != "segmentation"}
    assert tally.count == masks_seen > 0
    assert (tally.mean, tally.minimum) == (1.0, 1.0)
    assert tally.line() == f"polygons traced from {masks_seen} masks: IoU with the masks mean 1.0000, min 1.0000"


def test_polygons_mode_handles_holes_and_both_rle_forms():
    for row, image_id, height, width in read_rows(GENERATED):
        if row.get("rle") is None:
            continue
        after = written(convert_segmentation(row, "polygons", height, width), image_id, height, width)
        assert np.array_equal(coco_pixels(after["segmentation"], height, width), _holed_mask())


def test_simplified_polygons_recompute_area_and_bbox_from_their_pixels():
    tally = IouTally()
    recomputed = 0
    for row, image_id, height, width in read_file_rows(REAL_INSTANCES):
        before = written(row, image_id, height, width)
        after = written(convert_segmentation(row, "polygons", height, width, tolerance=2.0, tally=tally), image_id, height, width)
        drawn = coco_mask.merge(coco_mask.frPyObjects(after["segmentation"], height, width))
        original = coco_pixels(before["segmentation"], height, width)
        assert coco_mask.iou([drawn], [before["segmentation"]], [0])[0][0] >= 0.8
        if np.array_equal(coco_mask.decode(drawn).astype(bool), original):
            assert (after["area"], after["bbox"]) == (before["area"], before["bbox"])
        else:
            recomputed += 1
            assert after["area"] == int(coco_mask.area(drawn))
            assert after["bbox"] == [int(v) for v in coco_mask.toBbox(drawn)]
    assert recomputed > 0
    assert 0.8 <= tally.minimum < tally.mean < 1.0


def test_guess_makes_crowds_masks_and_the_others_polygons():
    rows = {row["coco_id"]: (row, height, width) for row, _, height, width in read_rows(GENERATED)}
    kinds = {}
    for coco_id, (row, height, width) in rows.items():
        converted = convert_segmentation(row, "guess", height, width)
        kinds[coco_id] = "mask" if converted.get("rle") is not None else "polygon" if converted.get("polygons") else None
        assert converted.get("iscrowd") == row.get("iscrowd")
    # 2 is a crowd polygon, 3 a non-crowd mask, 6 has no iscrowd and keeps its polygon
    assert kinds == {1: "polygon", 2: "mask", 3: "polygon", 4: "mask", 5: None, 6: "polygon"}


@pytest.mark.parametrize("mode", ["guess", "polygons", "mask"])
def test_a_box_without_segmentation_stays_a_box(mode):
    [(row, _, height, width)] = [entry for entry in read_rows(GENERATED) if entry[0]["coco_id"] == 5]
    assert convert_segmentation(row, mode, height, width) is row


def test_keypoint_records_stay_keypoint_records():
    for row, image_id, height, width in read_file_rows(DATUMARO_KEYPOINTS, "person_keypoints"):
        for mode in ("polygons", "mask"):
            converted = convert_segmentation(row, mode, height, width)
            assert converted["kind"] == "points"
            assert written(converted, image_id, height, width)["keypoints"] == row["keypoints"]


def test_a_mask_traced_and_filled_again_is_the_same_rle():
    for row, image_id, height, width in read_file_rows(REAL_INSTANCES):
        traced = convert_segmentation(row, "polygons", height, width)
        filled = convert_segmentation(traced, "mask", height, width, rle_form=RLE_STRING)
        assert filled["rle"] == row["rle"]
