"""Reading a project from code (repo.dataset), checked against the input files themselves:
pycocotools for masks, Pillow for images and panoptic PNGs, counts from the JSON."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import DATA
from helpers import id_map, load_json, masks_of
from repo.dataset import find_items, get_item, read_items
from repo.errors import NotFoundError, OptionError, QueryError
from repo.history import commit
from repo.importing import import_dataset
from repo.labels import rename_label
from repo.store import fetch
from vizdata import IMAGE, KEYPOINT_NAMES, POINTS, SKELETON, write_extras

PANOPTIC = DATA / "panopticapi_sample" / "coco"
ANNOTATIONS = PANOPTIC / "annotations"


def _pillow(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture
def sample(backend):
    project = backend.create()
    import_dataset(project, "coco", PANOPTIC, name="coco")
    return project


def test_items_carry_what_the_files_hold(sample):
    instances = load_json(ANNOTATIONS / "instances_val2017.json")
    panoptic = load_json(ANNOTATIONS / "panoptic_val2017.json")
    names = {c["id"]: c["name"] for c in instances["categories"]}
    colours = {c["id"]: tuple(c["color"]) for c in panoptic["categories"]}
    masks = masks_of(ANNOTATIONS / "instances_val2017.json")
    items = list(read_items(sample))
    assert [(i.subset, i.file_name, i.coco_id, i.width, i.height) for i in items] == [
        ("val2017", image["file_name"], image["id"], image["width"], image["height"]) for image in instances["images"]
    ]
    for item, image in zip(items, instances["images"]):
        assert item.source == "coco"
        assert item.extra["coco_url"] == image["coco_url"] and item.extra["license"] == image["license"]
        np.testing.assert_array_equal(item.image(), _pillow(PANOPTIC / "images" / "val2017" / item.file_name))
        expected = [a for a in instances["annotations"] if a["image_id"] == image["id"]]
        got = [a for a in item.annotations if a.task == "instances"]
        assert [a.coco_id for a in got] == [a["id"] for a in expected]
        for annotation, original in zip(got, expected):
            assert annotation.label == names[original["category_id"]]
            assert annotation.bbox == tuple(original["bbox"]) and all(type(v) is int for v in annotation.bbox)
            assert (annotation.area, annotation.iscrowd) == (original["area"], original["iscrowd"])
            assert annotation.rle["counts"] == original["segmentation"]["counts"]
            np.testing.assert_array_equal(annotation.mask(), masks[original["id"]].astype(bool))
        record = next(r for r in panoptic["annotations"] if r["image_id"] == image["id"])
        pixels = id_map(ANNOTATIONS / "panoptic_val2017" / record["file_name"])
        segments = [a for a in item.annotations if a.task == "panoptic"]
        assert [s.coco_id for s in segments] == [s["id"] for s in record["segments_info"]]
        for segment, original in zip(segments, record["segments_info"]):
            assert segment.color == colours[original["category_id"]]
            np.testing.assert_array_equal(segment.mask(), pixels == original["id"])


def test_keypoints_polygons_and_captions(backend, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", write_extras(tmp_path / "extras"), name="extras")
    item = get_item(project, IMAGE)
    person = next(a for a in item.annotations if a.task == "person_keypoints")
    assert person.keypoints == tuple(c for point in POINTS for c in point)
    assert person.keypoint_names == tuple(KEYPOINT_NAMES)
    assert person.skeleton == tuple(tuple(edge) for edge in SKELETON)
    expected = masks_of(tmp_path / "extras" / "annotations" / "person_keypoints_val2017.json")[900001]
    np.testing.assert_array_equal(person.mask(), expected.astype(bool))
    captions = load_json(tmp_path / "extras" / "annotations" / "captions_val2017.json")["annotations"]
    assert [a.caption for a in item.annotations if a.task == "captions"] == [c["caption"] for c in captions]


def test_where_and_tasks_select_what_export_would(sample):
    instances = load_json(ANNOTATIONS / "instances_val2017.json")
    panoptic = load_json(ANNOTATIONS / "panoptic_val2017.json")
    horses = {c["id"] for c in instances["categories"] if c["name"] == "horse"}
    expected = Counter(a["image_id"] for a in instances["annotations"] if a["category_id"] in horses)
    for record in panoptic["annotations"]:
        expected[record["image_id"]] += sum(s["category_id"] in horses for s in record["segments_info"])
    items = list(read_items(sample, where="label = 'horse'"))
    assert {item.coco_id: len(item.annotations) for item in items} == {k: v for k, v in expected.items() if v}
    assert {a.label for item in items for a in item.annotations} == {"horse"}
    only_panoptic = list(read_items(sample, tasks=["panoptic"]))
    assert [len(item.annotations) for item in only_panoptic] == [len(r["segments_info"]) for r in panoptic["annotations"]]
    assert {a.task for item in only_panoptic for a in item.annotations} == {"panoptic"}
    assert list(read_items(sample, where="label = 'no such label'")) == []


def test_bad_where_and_unknown_task_are_user_errors(sample):
    with pytest.raises(QueryError, match="^--where: "):
        list(read_items(sample, where="no_such_column = 1"))
    with pytest.raises(OptionError, match="unknown task 'instance'"):
        list(read_items(sample, tasks=["instance"]))


def test_revisions_are_read_as_they_were(sample):
    commit(sample, "first")
    rename_label(sample, "person", "human")
    now = Counter(a.label for item in read_items(sample) for a in item.annotations)
    then = Counter(a.label for item in read_items(sample, "HEAD") for a in item.annotations)
    assert now["human"] == then["person"] > 0 and "person" not in now and "human" not in then


def test_find_items_by_name_and_by_coco_id(backend, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", PANOPTIC, name="a")
    import_dataset(project, "coco_instances", PANOPTIC, name="b")
    assert [i.source for i in find_items(project, IMAGE)] == ["a", "b"]
    assert [i.file_name for i in find_items(project, 439180, source="b")] == ["000000439180.jpg"]
    assert [i.file_name for i in find_items(project, "439180")] == ["000000439180.jpg"] * 2
    assert get_item(project, IMAGE, source="b").source == "b"
    with pytest.raises(OptionError, match=r"names 2 items \(a:val2017/000000142238.jpg, b:val2017/000000142238.jpg\)"):
        get_item(project, IMAGE)
    with pytest.raises(NotFoundError, match="no item has the file name or COCO image id 'nope.jpg'"):
        get_item(project, "nope.jpg")
    named = get_item(project, IMAGE, source="b", where="label = 'no such label'")
    assert named.annotations == ()


def test_images_come_from_the_database_or_are_missing(backend, tmp_path):
    """An image is read from the database when stored (by content: any source's copy serves),
    else from the file recorded at import; None when neither exists."""
    original = _pillow(PANOPTIC / "images" / "val2017" / IMAGE)
    linked, stored = tmp_path / "linked", tmp_path / "stored"
    shutil.copytree(PANOPTIC, linked)
    shutil.copytree(PANOPTIC, stored)
    project = backend.create()
    import_dataset(project, "coco_panoptic", linked, name="linked")
    np.testing.assert_array_equal(get_item(project, IMAGE).image(), original)
    shutil.rmtree(linked / "images")
    assert get_item(project, IMAGE).image() is None
    import_dataset(project, "coco_instances", stored, name="stored", copy_images=True)
    shutil.rmtree(stored / "images")
    np.testing.assert_array_equal(get_item(project, IMAGE, source="stored").image(), original)
    np.testing.assert_array_equal(get_item(project, IMAGE, source="linked").image(), original)


def test_reading_streams(backend, tmp_path, monkeypatch):
    """Memory holds a batch of rows and one item, not the project: the peak while reading 1200
    items is about that of reading 300 (~0.1 MB; holding the 1200 items would take 2.4 MB).
    The bound leaves room for what the rest of a long test run allocates meanwhile (threads of
    earlier tests, the collector's timing): once 1.9x, never the 25x of holding them all."""
    monkeypatch.setattr(fetch, "STREAM_BATCH", 20)
    peaks = {}
    for count in (300, 1200):
        folder = tmp_path / f"gen{count}" / "annotations"
        folder.mkdir(parents=True)
        images = [{"id": n, "width": 64, "height": 48, "file_name": f"{n:05d}.jpg"} for n in range(count)]
        annotations = [
            {"id": n, "image_id": n, "category_id": 1, "iscrowd": 0, "area": 12.0, "bbox": [1.0, 2.0, 3.0, 4.0],
             "segmentation": [[1.0, 2.0, 4.0, 2.0, 4.0, 6.0, 1.0, 6.0]], "note": "x" * 200}
            for n in range(count)
        ]
        data = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}
        (folder / "instances_gen.json").write_text(json.dumps(data), encoding="utf-8")
        project = backend.create(f"project{count}")
        import_dataset(project, "coco", folder.parent, name="gen")
        for _ in read_items(project):  # once untraced: caches that fill on first use are not the rows
            pass
        tracemalloc.start()
        seen = sum(len(item.annotations) for item in read_items(project))
        peaks[count] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert seen == count
    assert peaks[1200] < 3 * peaks[300], peaks
