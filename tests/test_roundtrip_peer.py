"""create, import, export through the CLI gives back the reference datasets, field for field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import DATA, assert_same_file, id_map, masks_of

FOLDERS = [
    ("coco", "datumaro_coco/coco"),
    ("coco_captions", "datumaro_coco/coco_captions"),
    ("coco_image_info", "datumaro_coco/coco_image_info"),
    ("coco_instances", "datumaro_coco/coco_instances"),
    ("coco_labels", "datumaro_coco/coco_labels"),
    ("coco_person_keypoints", "datumaro_coco/coco_person_keypoints"),
    ("coco_stuff", "datumaro_coco/coco_stuff"),
    ("coco_instances", "datumaro_coco/mmdet_coco"),
    ("coco", "panopticapi_sample/coco"),
]

SINGLE_FILES = [
    ("coco_instances", "datumaro_coco/kaggle_dataset/relaxed_coco/annotations.json", "instances_default.json"),
    ("coco_instances", "datumaro_coco/coco_roboflow/train/_annotations.coco.json", "instances_default.json"),
    ("coco_instances", "datumaro_coco/roboflow_dataset/coco/val/_annotations.coco.json", "instances_default.json"),
    ("coco_panoptic", "datumaro_coco/coco_panoptic/annotations/panoptic_val.json", "panoptic_val.json"),
    ("coco_captions", "datumaro_coco/coco/annotations/captions_val.json", "captions_val.json"),
]


def _round_trip(cli, backend, format_name: str, source: Path) -> Path:
    project = backend.create_args()
    out = backend.tmp / "out"
    for args in (
        ["create", *project],
        ["import", "-p", project[1], "-f", format_name, str(source)],
        ["export", "-p", project[1], "-f", format_name, "-o", str(out)],
    ):
        cli(*args)
    return out


@pytest.mark.parametrize("format_name,folder", FOLDERS, ids=[f"{f}:{d}" for f, d in FOLDERS])
def test_folder_round_trip_is_lossless(cli, backend, format_name, folder):
    source = DATA / folder
    out = _round_trip(cli, backend, format_name, source)
    inputs = sorted(p.name for p in (source / "annotations").glob("*.json"))
    assert sorted(p.name for p in (out / "annotations").glob("*.json")) == inputs
    for name in inputs:
        assert_same_file(source / "annotations" / name, out / "annotations" / name)
    for png_dir in (source / "annotations").glob("panoptic_*/"):
        pngs = sorted(p.name for p in png_dir.glob("*.png"))
        assert sorted(p.name for p in (out / "annotations" / png_dir.name).glob("*.png")) == pngs
        for png in pngs:
            np.testing.assert_array_equal(id_map(png_dir / png), id_map(out / "annotations" / png_dir.name / png))


@pytest.mark.parametrize("format_name,file,exported", SINGLE_FILES, ids=[f for _, f, _ in SINGLE_FILES])
def test_single_file_round_trip_is_lossless(cli, backend, format_name, file, exported):
    source = DATA / file
    out = _round_trip(cli, backend, format_name, source)
    assert [p.name for p in (out / "annotations").glob("*.json")] == [exported]
    assert_same_file(source, out / "annotations" / exported)


@pytest.mark.parametrize("folder", ["datumaro_coco/coco", "datumaro_coco/coco_person_keypoints", "panopticapi_sample/coco"])
def test_pycocotools_sees_the_same_masks(cli, backend, folder):
    source = DATA / folder
    out = _round_trip(cli, backend, "coco", source)
    checked = 0
    for task in ("instances", "person_keypoints", "stuff"):
        for original in (source / "annotations").glob(f"{task}_*.json"):
            exported = out / "annotations" / original.name
            expected, actual = masks_of(original), masks_of(exported)
            assert expected.keys() == actual.keys()
            for annotation_id, mask in expected.items():
                np.testing.assert_array_equal(mask, actual[annotation_id])
                checked += 1
    assert checked > 0
