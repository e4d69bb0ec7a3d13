"""--allow-attributes false: no `attributes` key in annotations or panoptic segments."""

from __future__ import annotations

import json

from helpers import DATA
from repo.transforms.attributes import without_attributes


def _keys_named(value, name: str) -> int:
    if isinstance(value, dict):
        return (name in value) + sum(_keys_named(v, name) for v in value.values())
    if isinstance(value, list):
        return sum(_keys_named(v, name) for v in value)
    return 0


def test_annotations_of_every_datumaro_task_lose_their_attributes():
    seen = 0
    for path in sorted((DATA / "datumaro_coco" / "coco" / "annotations").glob("*.json")):
        for annotation in json.loads(path.read_text())["annotations"]:
            seen += _keys_named(annotation, "attributes")
            stripped = without_attributes(annotation)
            assert _keys_named(stripped, "attributes") == 0
            if "segments_info" not in annotation:
                assert stripped == {k: v for k, v in annotation.items() if k != "attributes"}
    assert seen > 0


def test_panoptic_segments_lose_theirs_and_nothing_else_changes():
    record = {
        "image_id": 1, "file_name": "a.png", "attributes": {"r": 1},
        "segments_info": [{"id": 1, "category_id": 2, "attributes": {"x": 1}}, {"id": 2, "category_id": 2}],
    }
    assert without_attributes(record) == {
        "image_id": 1, "file_name": "a.png",
        "segments_info": [{"id": 1, "category_id": 2}, {"id": 2, "category_id": 2}],
    }
    assert record["segments_info"][0]["attributes"] == {"x": 1}  # the input is not modified


def test_an_object_without_attributes_is_returned_as_it_is():
    annotation = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}
    assert without_attributes(annotation) is annotation
