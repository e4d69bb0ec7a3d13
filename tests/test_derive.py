"""One COCO task from another. The oracle for panoptic -> instances is panopticapi itself:
the real sample's instances file is panopticapi's conversion of its panoptic file."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from helpers import DATA, id_map
from repo.coco.panoptic import read_id_map, segment_masks
from repo.coco.reader import read_task_document
from repo.errors import ConflictError, InputError, NotFoundError
from repo.model.policy import ErrorPolicy
from repo.model.records import ANNOTATION_FIELDS, RLE_LIST, RLE_STRING
from repo.transforms.derive import (
    annotations_from_keypoints, annotations_from_segments, categories_from_keypoints, categories_from_panoptic,
    isthing_of, panoptic_categories, panoptic_from_annotations, sources_for,
)
from rows import one_image, read_file_rows, read_rows, row_pixels, written

SAMPLE = DATA / "panopticapi_sample" / "coco" / "annotations"
DATUMARO = DATA / "datumaro_coco"


def _panoptic(path: Path):
    """(categories, [(image record, segment rows with their masks)]) of a panoptic file, as
    the import stores them."""
    document = json.loads(path.read_text())
    task_file = read_task_document(document, str(path), "panoptic", "val", path.name, ErrorPolicy())
    images = {image["coco_id"]: image for image in task_file.images}
    records = []
    for record in task_file.panoptic:
        image = images[record.image_id]
        pixels = read_id_map(path.with_suffix("") / record.png_name, "png", "record", image["width"], image["height"])
        masks = segment_masks(pixels, record.image_id, [s["coco_id"] for s in record.segments], "png")
        segments = [dict({name: s.get(name) for name in ANNOTATION_FIELDS}, rle=m, rle_form=RLE_STRING)
                    for s, m in zip(record.segments, masks)]
        records.append((image, segments))
    return task_file.categories, records


@pytest.mark.parametrize("things", [True, False], ids=["instances", "stuff"])
def test_panoptic_segments_become_what_panopticapi_converts_them_to(things):
    categories, records = _panoptic(SAMPLE / "panoptic_val2017.json")
    isthing = isthing_of(categories, "panoptic_val2017.json")
    converted = json.loads((SAMPLE / "instances_val2017.json").read_text())["annotations"]
    expected = [a for a in converted if isthing[a["category_id"]] == things]  # panopticapi writes both kinds
    ids = itertools.count(1)
    derived = []
    for image, segments in records:
        for row in annotations_from_segments(segments, isthing, things, image["height"], image["width"], ids, rle_form=RLE_STRING):
            derived.append(written(row, image["coco_id"], image["height"], image["width"]))
    assert len(derived) == len(expected) == (43 if things else 7)
    for number, (mine, theirs) in enumerate(zip(derived, expected), start=1):
        assert mine["id"] == number
        for key in ("image_id", "category_id", "iscrowd", "area", "bbox", "segmentation"):
            assert mine[key] == theirs[key], key


def test_derived_masks_are_uncompressed_by_default_and_keep_crowds():
    categories, records = _panoptic(SAMPLE / "panoptic_val2017.json")
    isthing = isthing_of(categories, "panoptic_val2017.json")
    image, segments = records[0]
    rows = annotations_from_segments(segments, isthing, True, image["height"], image["width"], itertools.count(1))
    assert {row["rle_form"] for row in rows} == {RLE_LIST}
    crowd = [row["iscrowd"] for row in rows]
    assert crowd == [s["iscrowd"] for s in segments if isthing[s["category_id"]]]
    for row, segment in zip(rows, [s for s in segments if isthing[s["category_id"]]]):
        assert np.array_equal(row_pixels(row, image["height"], image["width"]),
                              coco_mask.decode({"counts": segment["rle"], "size": [image["height"], image["width"]]}).astype(bool))


def test_categories_split_into_things_and_stuff_without_isthing():
    categories, _ = _panoptic(SAMPLE / "panoptic_val2017.json")
    isthing = isthing_of(categories, "panoptic_val2017.json")
    things = categories_from_panoptic(categories, isthing, True)
    stuff = categories_from_panoptic(categories, isthing, False)
    assert (len(things), len(stuff)) == (80, 53)
    assert things[0]["name"] == "person" and things[0]["extra"] == {"color": [220, 20, 60]}
    assert all("isthing" not in (c["extra"] or {}) for c in things + stuff)
    merged = panoptic_categories(things, stuff)
    assert [(c["coco_id"], c["extra"]["isthing"]) for c in merged] == [
        (c["coco_id"], c["extra"]["isthing"]) for c in sorted(categories, key=lambda c: c["extra"]["isthing"] == 0)
    ]


def test_panoptic_categories_refuse_one_id_with_two_names():
    with pytest.raises(ConflictError, match="category id 3 is 'car' in instances and 'sky' in stuff"):
        panoptic_categories([{"coco_id": 3, "name": "car", "extra": None}], [{"coco_id": 3, "name": "sky", "extra": None}])


def test_a_panoptic_category_without_isthing_is_named():
    categories = [{"coco_id": 7, "name": "a", "extra": {"color": [1, 2, 3]}}]
    with pytest.raises(InputError) as error:
        isthing_of(categories, "annotations/panoptic_val.json")
    assert str(error.value) == (
        "annotations/panoptic_val.json: category id 7: field 'isthing': the category has no 'isthing'; "
        "deriving instances and stuff from panoptic segments needs 0 (stuff) or 1 (thing)"
    )


def test_datumaro_panoptic_sample_has_only_stuff():
    """Datumaro writes isthing 0 for every category: nothing is a thing."""
    categories, records = _panoptic(DATUMARO / "coco_panoptic" / "annotations" / "panoptic_val.json")
    isthing = isthing_of(categories, "panoptic_val.json")
    image, segments = records[0]
    assert annotations_from_segments(segments, isthing, True, image["height"], image["width"], itertools.count(1)) == []
    assert len(annotations_from_segments(segments, isthing, False, image["height"], image["width"], itertools.count(1))) == 2


def test_real_instances_and_stuff_paint_the_original_panoptic_png():
    """The sample's detection-format file holds every segment; painted back, the PNG's
    partition of the pixels is the original's (segment ids are new: 1..N per image)."""
    categories, _ = _panoptic(SAMPLE / "panoptic_val2017.json")
    isthing = isthing_of(categories, "panoptic_val2017.json")
    entries = read_file_rows(SAMPLE / "instances_val2017.json")
    panoptic = json.loads((SAMPLE / "panoptic_val2017.json").read_text())
    for record in panoptic["annotations"]:
        rows = [(row, h, w) for row, image_id, h, w in entries if image_id == record["image_id"]]
        height, width = rows[0][1:]
        things = [row for row, _, _ in rows if isthing[row["category_id"]]]
        stuff = [row for row, _, _ in rows if not isthing[row["category_id"]]]
        derived = panoptic_from_annotations(things, stuff, height, width)
        assert derived.left_out == []
        original = id_map(SAMPLE / "panoptic_val2017" / record["file_name"])
        pairs = set(zip(original.ravel().tolist(), derived.id_map.ravel().tolist()))
        assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})  # a bijection
        by_original = {s["id"]: s for s in record["segments_info"]}
        for segment in derived.segments:
            [old] = [a for a, b in pairs if b == segment["coco_id"]]
            for key, value in (("category_id", by_original[old]["category_id"]), ("iscrowd", by_original[old]["iscrowd"]),
                               ("area", float(by_original[old]["area"]))):
                assert segment[key] == value
            assert [segment[k] for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")] == by_original[old]["bbox"]


def _square(x: float, y: float, size: float) -> list[float]:
    return [x, y, x + size, y, x + size, y + size, x, y + size]


def test_things_are_painted_over_stuff_and_later_things_over_earlier():
    entries = read_rows(one_image([
        {"id": 10, "iscrowd": 0, "segmentation": [_square(0, 0, 40)]},  # stuff: the whole image
        {"id": 1, "iscrowd": 0, "segmentation": [_square(5, 5, 10)]},
        {"id": 2, "iscrowd": 1, "segmentation": [_square(10, 10, 10)], "attributes": {"z_order": 1}},
        {"id": 3, "iscrowd": 0, "segmentation": [_square(12, 12, 4)]},  # under 2 (z_order 1): lost
        {"id": 4, "iscrowd": 0, "bbox": [1, 1, 2, 2]},  # nothing to paint
    ], height=40, width=40))
    rows = {row["coco_id"]: row for row, *_ in entries}
    derived = panoptic_from_annotations([rows[1], rows[2], rows[3], rows[4]], [rows[10]], 40, 40)
    assert [(row["coco_id"], why) for row, why in derived.left_out] == [
        (4, "has no segmentation to paint"), (3, "lost every pixel to annotations painted after it"),
    ]
    assert [(s["coco_id"], s["category_id"], s["iscrowd"], s["area"]) for s in derived.segments] == [
        (1, 1, 0, 1600.0 - 100 - 75), (2, 1, 0, 75.0), (3, 1, 1, 100.0),
    ]
    expected = np.ones((40, 40), dtype=np.uint32)
    expected[5:15, 5:15] = 2
    expected[10:20, 10:20] = 3
    assert np.array_equal(derived.id_map, expected)
    for segment in derived.segments:
        mask = coco_mask.decode({"counts": segment["rle"], "size": [40, 40]}).astype(bool)
        assert np.array_equal(mask, expected == segment["coco_id"])


def test_keypoint_records_as_instances():
    entries = read_file_rows(DATUMARO / "coco_person_keypoints" / "annotations" / "person_keypoints_val.json", "person_keypoints")
    rows = annotations_from_keypoints([row for row, *_ in entries])
    for (original, image_id, height, width), row in zip(entries, rows):
        before, after = written(original, image_id, height, width), written(row, image_id, height, width)
        assert after == {k: v for k, v in before.items() if k not in ("keypoints", "num_keypoints")}
        assert row["kind"] in ("polygon", "mask")
    categories = categories_from_keypoints([{"coco_id": 1, "name": "a", "extra": {"keypoints": [], "skeleton": [[0, 1]]}}])
    assert categories == [{"coco_id": 1, "name": "a", "extra": None}]


@pytest.mark.parametrize(("task", "held", "sources"), [
    ("instances", {"instances", "panoptic"}, ("instances",)),
    ("instances", {"panoptic"}, ("panoptic",)),
    ("instances", {"person_keypoints"}, ("person_keypoints",)),
    ("instances", {"person_keypoints", "panoptic"}, ("panoptic",)),
    ("stuff", {"panoptic", "captions"}, ("panoptic",)),
    ("panoptic", {"instances"}, ("instances",)),
    ("panoptic", {"instances", "stuff"}, ("instances", "stuff")),
    ("image_info", {"captions"}, ("captions",)),
])
def test_what_each_task_is_derived_from(task, held, sources):
    assert sources_for(task, held) == sources


@pytest.mark.parametrize(("task", "held", "message"), [
    ("instances", {"captions"},
     "cannot export instances: the project holds no instances files and none of panoptic or person_keypoints "
     "to derive them from (it holds captions)"),
    ("panoptic", {"labels"},
     "cannot export panoptic: the project holds no panoptic files and none of instances or stuff to derive "
     "them from (it holds labels)"),
    ("captions", {"instances", "panoptic"},
     "cannot export captions: the project holds no captions files, and no other COCO task holds captions "
     "(it holds instances, panoptic)"),
    ("person_keypoints", set(),
     "cannot export person_keypoints: the project holds no person_keypoints files, and no other COCO task holds "
     "keypoints (it holds no annotation files)"),
    ("image_info", set(),
     "cannot export image_info: the project holds no image_info files and no file of any other task to derive "
     "them from (it holds no annotation files)"),
])
def test_what_cannot_be_derived_is_one_line_naming_it(task, held, message):
    with pytest.raises(NotFoundError) as error:
        sources_for(task, held)
    assert str(error.value) == message
