"""Updating a source from a newer copy of its files stores only what changed."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from gen_coco import generate
from helpers import assert_same_file, database_contents, id_map, load_json, row_count
from repo.errors import NotFoundError
from repo.exporting import export_dataset
from repo.history import commit, status
from repo.importing import import_dataset
from repo.sources import update_source


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("update")
    generate(root, images=40, seed=5, tasks=["instances", "captions", "panoptic"])
    return root


@pytest.fixture
def copy_of(dataset, tmp_path) -> Path:
    target = tmp_path / "newer"
    shutil.copytree(dataset, target)
    return target


def _edit(folder: Path, name: str, change) -> None:
    path = folder / "annotations" / name
    document = load_json(path)
    change(document)
    path.write_text(json.dumps(document))


def _counts(project) -> dict[str, int]:
    return {table: row_count(project, table) for table in ("items", "annotations", "file_images", "files", "categories")}


def test_identical_files_change_nothing(backend, dataset):
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    commit(project, "imported")
    before = database_contents(project)
    result = update_source(project, "src", dataset)
    assert result.changes.empty
    assert database_contents(project) == before
    assert status(project) == []


def test_one_changed_annotation_is_one_new_row(backend, dataset, copy_of, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    commit(project, "imported")
    before = _counts(project)
    _edit(copy_of, "instances_val2017.json", lambda d: d["annotations"][10].update(bbox=[1.5, 2.5, 3.5, 4.5]))
    result = update_source(project, "src", copy_of)
    assert result.changes.changed == {"annotations": 1} and not result.changes.added and not result.changes.removed
    after = _counts(project)
    assert after == {**before, "annotations": before["annotations"] + 1}  # the old version stays as history
    commit(project, "moved one box")
    out = tmp_path / "out"
    export_dataset(project, "coco", out)
    for name in ("instances_val2017.json", "captions_val2017.json", "panoptic_val2017.json"):
        assert_same_file(copy_of / "annotations" / name, out / "annotations" / name)


def test_an_insertion_renumbers_nothing(backend, dataset, copy_of, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    commit(project, "imported")

    def insert(document: dict[str, Any]) -> None:
        added = copy.deepcopy(document["annotations"][5])
        added["id"] = 999_999
        document["annotations"].insert(6, added)

    _edit(copy_of, "instances_val2017.json", insert)
    result = update_source(project, "src", copy_of)
    assert result.changes.added == {"annotations": 1}
    assert not result.changes.changed and not result.changes.removed
    out = tmp_path / "out"
    export_dataset(project, "coco_instances", out)
    assert_same_file(copy_of / "annotations" / "instances_val2017.json", out / "annotations" / "instances_val2017.json")


def test_reordering_and_removal(backend, dataset, copy_of, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    commit(project, "imported")
    first_image = load_json(dataset / "annotations" / "captions_val2017.json")["images"][0]

    def drop_first_image(document: dict[str, Any]) -> None:
        document["images"] = [i for i in document["images"] if i["id"] != first_image["id"]]
        document["annotations"] = [a for a in document["annotations"] if a["image_id"] != first_image["id"]]
        document["annotations"].reverse()

    _edit(copy_of, "captions_val2017.json", drop_first_image)
    result = update_source(project, "src", copy_of)
    assert result.changes.removed["file_images"] == 1
    assert "items" not in result.changes.removed  # instances and panoptic still list the image
    out = tmp_path / "out"
    export_dataset(project, "coco", out)
    for name in ("instances_val2017.json", "captions_val2017.json", "panoptic_val2017.json"):
        assert_same_file(copy_of / "annotations" / name, out / "annotations" / name)


def test_a_changed_png_is_a_changed_segment(backend, dataset, copy_of, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    commit(project, "imported")
    panoptic = load_json(copy_of / "annotations" / "panoptic_val2017.json")
    record = next(r for r in panoptic["annotations"] if len(r["segments_info"]) >= 2)
    png_path = copy_of / "annotations" / "panoptic_val2017" / record["file_name"]
    ids = id_map(png_path)
    first, second = record["segments_info"][0]["id"], record["segments_info"][1]["id"]
    ys, xs = (ids == first).nonzero()
    ids[ys[0], xs[0]] = second  # one pixel moves from one segment to the other
    rgb = [(ids >> shift) & 255 for shift in (0, 8, 16)]
    Image.fromarray(np.stack(rgb, axis=-1).astype("uint8"), "RGB").save(png_path)
    result = update_source(project, "src", copy_of)
    assert result.changes.changed == {"annotations": 2}
    out = tmp_path / "out"
    export_dataset(project, "coco_panoptic", out)
    np.testing.assert_array_equal(id_map(png_path), id_map(out / "annotations" / "panoptic_val2017" / record["file_name"]))


def test_update_of_an_unknown_source(backend, dataset):
    project = backend.create()
    with pytest.raises(NotFoundError, match="no source named 'nope'"):
        update_source(project, "nope", dataset)
