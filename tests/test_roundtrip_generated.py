"""Generated datasets with every edge case round trip losslessly, on both databases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gen_coco import generate
from helpers import assert_same_file, id_map, json_difference, load_json, masks_of
from repo.exporting import export_dataset
from repo.importing import import_dataset


@pytest.fixture(scope="module")
def edge_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("edge")
    generate(root, images=24, seed=7, edge_cases=True, write_images=True)
    return root


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "annotations").glob("*.json"))


def test_edge_cases_round_trip(backend, edge_dataset, tmp_path):
    project = backend.create()
    result = import_dataset(project, "coco", edge_dataset)
    assert result.missing_images == 0
    out = tmp_path / "out"
    export_dataset(project, "coco", out)
    assert _files(out) == _files(edge_dataset) and len(_files(out)) == 7
    for name in _files(edge_dataset):
        assert_same_file(edge_dataset / "annotations" / name, out / "annotations" / name)
    png_dir = next((edge_dataset / "annotations").glob("panoptic_*/"))
    out_dir = out / "annotations" / png_dir.name
    pngs = sorted(p.relative_to(png_dir) for p in png_dir.rglob("*.png"))
    assert sorted(p.relative_to(out_dir) for p in out_dir.rglob("*.png")) == pngs
    for name in pngs:
        np.testing.assert_array_equal(id_map(png_dir / name), id_map(out_dir / name))


def test_edge_cases_are_really_there(edge_dataset):
    """The generator's promises, checked independently, so the round trip above means something."""
    instances = load_json(next((edge_dataset / "annotations").glob("instances_*.json")))
    ids = [a["id"] for a in instances["annotations"]] + [i["id"] for i in instances["images"]]
    assert max(ids) > 2**31
    assert [c["id"] for c in instances["categories"]] != sorted(c["id"] for c in instances["categories"])
    forms = {type(a.get("segmentation", {}).get("counts")) if isinstance(a.get("segmentation"), dict) else "poly"
             for a in instances["annotations"]}
    assert {str, list, "poly"} <= forms
    names = [i["file_name"] for i in instances["images"]]
    assert any("/" in n for n in names) and any(" " in n for n in names) and any(not n.isascii() for n in names)
    annotated = {a["image_id"] for a in instances["annotations"]}
    assert any(i["id"] not in annotated for i in instances["images"])
    numbers = [v for a in instances["annotations"] for v in a.get("bbox", [])]
    assert 0.30000000000000004 in numbers and any(type(v) is int for v in numbers)
    captions = load_json(next((edge_dataset / "annotations").glob("captions_*.json")))
    assert any(not c["caption"].isascii() for c in captions["annotations"])
    image_info = load_json(next((edge_dataset / "annotations").glob("image_info_*.json")))
    assert "annotations" not in image_info
    png_dir = next((edge_dataset / "annotations").glob("panoptic_*/"))
    maps = [id_map(p) for p in png_dir.rglob("*.png")]
    assert any(not m.any() for m in maps) and any((m == 2**24 - 1).any() for m in maps)


def test_pycocotools_draws_the_same_masks(backend, edge_dataset, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", edge_dataset)
    out = tmp_path / "out"
    export_dataset(project, "coco", out)
    for task in ("instances", "person_keypoints", "stuff"):
        original = next((edge_dataset / "annotations").glob(f"{task}_*.json"))
        expected, actual = masks_of(original), masks_of(out / "annotations" / original.name)
        assert expected.keys() == actual.keys() and expected
        for annotation_id, mask in expected.items():
            np.testing.assert_array_equal(mask, actual[annotation_id])


def test_a_bigger_generated_set_round_trips(backend, tmp_path):
    data = tmp_path / "data"
    counts = generate(data, images=300, seed=11, tasks=["instances", "panoptic", "stuff"])
    project = backend.create()
    result = import_dataset(project, "coco", data)
    assert result.annotations == counts["instances"] + counts["panoptic_segments"] + counts["stuff"]
    out = tmp_path / "out"
    export_dataset(project, "coco", out)
    for name in _files(data):
        assert_same_file(data / "annotations" / name, out / "annotations" / name)
    png_dir = data / "annotations" / "panoptic_val2017"
    for png in png_dir.iterdir():
        np.testing.assert_array_equal(id_map(png), id_map(out / "annotations" / "panoptic_val2017" / png.name))


def test_values_a_database_would_bend(backend, tmp_path):
    """SQLite gives a JSON column numeric affinity (20.0 would come back as 20) and drops the
    sign of -0.0 in REAL columns; PostgreSQL has its own limits. None of it may show."""
    document = {
        "info": 20.0, "licenses": 2**70, "x_vendor": -0.0,
        "categories": [{"id": 1, "name": "a"}],
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4, "date_captured": 1e-320}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [-0.0, 0, 0.0, 1e308],
                         "area": -0.0, "score": 5e-324, "iscrowd": 0}],
    }
    folder = tmp_path / "data" / "annotations"
    folder.mkdir(parents=True)
    (folder / "instances_val.json").write_text(json.dumps(document))
    project = backend.create()
    import_dataset(project, "coco", tmp_path / "data")
    export_dataset(project, "coco", tmp_path / "out")
    exported = load_json(tmp_path / "out" / "annotations" / "instances_val.json")
    assert json_difference(document, exported) is None
    signs = [math.copysign(1, v) for v in (exported["annotations"][0]["bbox"][0], exported["annotations"][0]["area"],
                                          exported["x_vendor"], exported["annotations"][0]["bbox"][2])]
    assert signs == [-1, -1, -1, 1]


def test_keys_of_an_rle_object_and_nul_in_a_caption_survive(backend, tmp_path):
    """Every key at every level comes back, also inside a segmentation's RLE object; and a
    caption may hold any character, NUL included (which PostgreSQL's text columns refuse)."""
    image = {"id": 1, "file_name": "a.jpg", "width": 2, "height": 2}
    instances = {
        "categories": [{"id": 1, "name": "a"}], "images": [image],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 1,
                         "segmentation": {"counts": [1, 2, 1], "size": [2, 2], "x_tool": {"v": 2}}}],
    }
    captions = {"images": [image], "annotations": [{"id": 1, "image_id": 1, "caption": "a\u0000b"}]}
    folder = tmp_path / "data" / "annotations"
    folder.mkdir(parents=True)
    (folder / "instances_val.json").write_text(json.dumps(instances))
    (folder / "captions_val.json").write_text(json.dumps(captions))
    project = backend.create()
    import_dataset(project, "coco", tmp_path / "data")
    export_dataset(project, "coco", tmp_path / "out")
    for name, document in (("instances_val.json", instances), ("captions_val.json", captions)):
        assert json_difference(document, load_json(tmp_path / "out" / "annotations" / name)) is None
    expected = masks_of(folder / "instances_val.json")[1]
    np.testing.assert_array_equal(masks_of(tmp_path / "out" / "annotations" / "instances_val.json")[1], expected)
