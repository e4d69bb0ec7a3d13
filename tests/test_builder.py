"""Building a dataset from code (repo.builder): what each kind of annotation becomes, and that
bad input gives the error an import of the same data gives, with the project unchanged.

Oracles: pycocotools decodes the exported masks, Pillow decodes the exported images and PNGs,
and an import of the equivalent COCO file (written with plain `json`) gives the expected
errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask
from sqlalchemy import func, select

from helpers import id_map, load_json
from repo import DatasetBuilder, export_dataset, import_dataset
from repo.errors import ConflictError, InputError
from repo.store import schema

MASK_D = np.array([[0, 0, 1, 1, 0]])
MASK_B = np.array([[0, 1, 0, 0, 1]])


def _sources(project) -> int:
    with project.reading() as connection:
        return connection.execute(select(func.count()).select_from(schema.sources)).scalar_one()


def test_masks_of_one_group_are_one_panoptic_segment(backend, tmp_path):
    with backend.create() as project:
        builder = DatasetBuilder(project, "built", categories=["a", "b"])
        item = builder.add_item("val", "x.jpg", width=5, height=1, coco_id=3)
        builder.add_annotation(item, mask=np.array([[1, 0, 0, 0, 0]]), label="a", group=9)
        builder.add_annotation(item, mask=np.array([[0, 0, 0, 0, 1]]), label="a", group=9)
        builder.add_annotation(item, mask=np.array([[0, 1, 1, 0, 0]]), label=1)  # no id: numbered after 9
        builder.build()
        export_dataset(project, "coco_panoptic", tmp_path / "out")
    ids = id_map(tmp_path / "out" / "annotations" / "panoptic_val" / "x.png")
    assert ids.tolist() == [[9, 10, 10, 0, 9]]
    segments = load_json(tmp_path / "out" / "annotations" / "panoptic_val.json")["annotations"][0]["segments_info"]
    assert [(s["id"], s["category_id"], s["area"], s["bbox"]) for s in segments] == [
        (9, 1, 2, [0, 0, 5, 1]),
        (10, 2, 2, [1, 0, 2, 1]),
    ]


def test_every_kind_of_annotation_lands_in_its_task(backend, tmp_path):
    categories = ["cat", {"name": "person", "keypoints": ["nose", "eye"], "skeleton": [[1, 2]]}]
    with backend.create() as project:
        builder = DatasetBuilder(project, "built", categories=categories, mask_task="instances")
        item = builder.add_item("train", "a.jpg", width=4, height=3, attributes={"license": 2})
        mask = np.zeros((3, 4), dtype=bool)
        mask[1:, 2:] = True
        builder.add_annotation(item, mask=mask, label=0, id=5, iscrowd=True)
        builder.add_annotation(item, polygons=[[0, 0, 2, 0, 2, 2]], label="cat", attributes={"occluded": True})
        builder.add_annotation(item, bbox=[1, 1, 2, 1.5], label="cat", score=0.5)
        builder.add_annotation(item, keypoints=[[1, 1, 2], [2, 1, 0]], bbox=[0, 0, 3, 3], label="person")
        builder.add_annotation(item, caption="a cat")
        builder.add_annotation(item, label="cat")
        result = builder.build()
        assert (result.images, result.annotations) == (1, 6)
        export_dataset(project, "coco", tmp_path / "out")
    folder = tmp_path / "out" / "annotations"
    assert sorted(p.name for p in folder.glob("*.json")) == [
        "captions_train.json",
        "instances_train.json",
        "labels_train.json",
        "person_keypoints_train.json",
    ]
    instances = load_json(folder / "instances_train.json")
    assert instances["images"] == [{"id": 1, "width": 4, "height": 3, "file_name": "a.jpg", "license": 2}]
    crowd, polygon, box = instances["annotations"]
    assert (crowd["id"], crowd["iscrowd"], crowd["category_id"]) == (5, 1, 1)
    assert np.array_equal(
        coco_mask.decode(dict(crowd["segmentation"], counts=crowd["segmentation"]["counts"].encode())), mask
    )
    assert (polygon["id"], polygon["segmentation"], polygon["attributes"]) == (
        6,
        [[0, 0, 2, 0, 2, 2]],
        {"occluded": True},
    )
    assert (box["id"], box["bbox"], box["score"]) == (7, [1, 1, 2, 1.5], 0.5)
    [person] = load_json(folder / "person_keypoints_train.json")["annotations"]
    assert (person["category_id"], person["keypoints"], person["num_keypoints"]) == (2, [1, 1, 2, 2, 1, 0], 1)
    [caption] = load_json(folder / "captions_train.json")["annotations"]
    assert caption["caption"] == "a cat"
    [label] = load_json(folder / "labels_train.json")["annotations"]
    assert label["category_id"] == 1


def test_image_pixels_are_stored_or_written(backend, tmp_path):
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    with backend.create() as project:
        builder = DatasetBuilder(project, "stored", categories=["a"])
        builder.add_item("val", "p.png", image=pixels)
        builder.build()
        written = DatasetBuilder(project, "written", categories=["a"], image_dir=tmp_path / "images")
        written.add_item("test", "q.png", image=pixels)
        written.build()
        with project.reading() as connection:
            assert connection.execute(select(func.count()).select_from(schema.blobs)).scalar_one() == 1
        export_dataset(project, "coco", tmp_path / "out", save_images=True)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "images" / "test" / "q.png")), pixels)
    for subset, name in (("val", "p.png"), ("test", "q.png")):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "images" / subset / name)), pixels)


def _import_error(tmp_path: Path, document: dict, task: str = "instances") -> InputError:
    """The error an import of the same data, written as a COCO file, gives (the oracle)."""
    path = tmp_path / "oracle" / f"{task}_val.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    from repo import Project

    with Project.create(tmp_path / "oracle-project") as project, pytest.raises(InputError) as caught:
        import_dataset(project, f"coco_{task}", path)
    return caught.value


def test_bad_input_gives_the_imports_error_and_writes_nothing(backend, tmp_path):
    document = {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 5, "height": 1}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1]}],
    }
    expected = _import_error(tmp_path, document)
    with backend.create() as project:
        builder = DatasetBuilder(project, "built", categories=["a"])
        item = builder.add_item("val", "x.jpg", width=5, height=1, coco_id=1)
        builder.add_annotation(item, bbox=[0, 0, 1], label="a", id=1)
        with pytest.raises(InputError) as caught:
            builder.build()
        assert (caught.value.record, caught.value.field, caught.value.problem) == (
            expected.record,
            expected.field,
            expected.problem,
        )
        assert caught.value.file == "<built built>/instances_val.json"
        assert _sources(project) == 0


def test_a_mask_of_the_wrong_size_gives_the_imports_rle_error(backend, tmp_path):
    rle = coco_mask.encode(np.asfortranarray(np.ones((1, 4), dtype=np.uint8)))
    document = {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 5, "height": 1}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 1,
                "segmentation": {"size": [1, 4], "counts": rle["counts"].decode()},
            }
        ],
    }
    expected = _import_error(tmp_path, document)
    with backend.create() as project:
        builder = DatasetBuilder(project, "built", categories=["a"], mask_task="instances")
        item = builder.add_item("val", "x.jpg", width=5, height=1, coco_id=1)
        with pytest.raises(InputError, match="the mask is 1x4 \\(height x width\\), but the image is 1x5"):
            builder.add_annotation(item, mask=np.ones((1, 4)), label="a", id=1)
        assert "differs from the image's [height, width] = [1, 5]" in expected.problem
        assert _sources(project) == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"mask": np.array([[0, 2, 0, 0, 0]]), "label": "a"}, "field 'mask': expected 0 and 1"),
        ({"mask": MASK_D, "label": "z"}, "field 'label': no category is named 'z' \\(categories: a, b\\)"),
        ({"mask": MASK_D, "label": 2}, "field 'label': index 2 is not in the category list \\(0..1\\)"),
        ({"bbox": [0, 0, 1, 1]}, "field 'label': the annotation needs a label"),
        ({"caption": "x", "label": "a"}, "field 'caption': a caption takes no label or geometry"),
    ],
)
def test_bad_annotations_are_refused_when_added(backend, arguments, message):
    with backend.create() as project:
        builder = DatasetBuilder(project, "built", categories=["a", "b"])
        item = builder.add_item("val", "x.jpg", width=5, height=1)
        with pytest.raises(InputError, match=message):
            builder.add_annotation(item, **arguments)


def test_overlapping_segments_and_bad_segment_ids_fail_the_build(backend):
    with backend.create() as project:
        builder = DatasetBuilder(project, "built", categories=["a", "b"])
        item = builder.add_item("val", "x.jpg", width=5, height=1, coco_id=40)
        builder.add_annotation(item, mask=MASK_D, label="a", id=7)
        builder.add_annotation(item, mask=np.array([[0, 0, 0, 1, 1]]), label="b", id=20)
        with pytest.raises(InputError, match="segment id 20 of image id 40: field 'mask': the mask overlaps segment 7"):
            builder.build()
        other = DatasetBuilder(project, "other", categories=["a"])
        item = other.add_item("val", "x.jpg", width=5, height=1, coco_id=40)
        other.add_annotation(item, mask=MASK_D, label="a", id=1 << 24)
        with pytest.raises(InputError, match="field 'id': expected 1 to 2\\^24-1"):
            other.build()
        mixed = DatasetBuilder(project, "mixed", categories=["a", "b"])
        item = mixed.add_item("val", "x.jpg", width=5, height=1, coco_id=40)
        mixed.add_annotation(item, mask=MASK_D, label="a", group=2)
        mixed.add_annotation(item, mask=MASK_B, label="b", group=2)
        with pytest.raises(InputError, match="segment id 2 of image id 40: field 'label': the masks of one group"):
            mixed.build()
        empty = DatasetBuilder(project, "empty", categories=["a"])
        item = empty.add_item("val", "x.jpg", width=5, height=1, coco_id=40)
        empty.add_annotation(item, mask=np.zeros((1, 5)), label="a", id=3)
        with pytest.raises(InputError, match="segment id 3 of image id 40: field 'id': the segment has no pixels"):
            empty.build()
        assert _sources(project) == 0


def test_items_are_refused_twice_and_without_a_size(backend):
    with backend.create() as project:
        builder = DatasetBuilder(project, "built")
        builder.add_item("val", "x.jpg", width=5, height=1)
        with pytest.raises(ConflictError, match="item val/x.jpg was added twice"):
            builder.add_item("val", "x.jpg", width=5, height=1)
        with pytest.raises(InputError, match="field 'height': give the size or the image"):
            builder.add_item("val", "y.jpg", width=5)
        with pytest.raises(InputError, match="field 'width': 4 differs from the image's 5 pixels"):
            builder.add_item("val", "z.png", width=4, image=np.zeros((1, 5)))
        with pytest.raises(InputError, match="field 'file_name'"):
            builder.add_item("val", "../up.jpg", width=5, height=1)
        result = builder.build()  # an item without annotations is an image_info item
        assert (result.images, result.files) == (1, ["<built built>/image_info_val.json"])
