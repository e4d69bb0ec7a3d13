"""The COCO layouts Datumaro imports (Roboflow, MMDetection, Kaggle's relaxed COCO) are found by
`coco` and the task formats, and round-trip on both databases."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from helpers import DATA, json_difference
from repo.coco.layout import discover
from repo.errors import ConflictError, NotFoundError, OptionError
from repo.exporting import export_dataset
from repo.importing import import_dataset

DATUMARO = DATA / "datumaro_coco"

# folder, [(annotation file below it, subset, image folder below it)]
LAYOUTS = {
    "roboflow": ("coco_roboflow", [("train/_annotations.coco.json", "train", "train"), ("val/_annotations.coco.json", "val", "val")]),
    "roboflow2": ("roboflow_dataset", [
        ("coco/train/_annotations.coco.json", "train", "coco/train"), ("coco/val/_annotations.coco.json", "val", "coco/val"),
    ]),
    "mmdet": ("mmdet_coco", [("annotations/instances_train.json", "train", "train"), ("annotations/instances_val.json", "val", "val")]),
    "kaggle": ("kaggle_dataset/relaxed_coco", [("annotations.json", "default", ".")]),
}


@pytest.mark.parametrize("format_name", ["coco", "coco_instances"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_layout_is_found(layout, format_name):
    folder, expected = LAYOUTS[layout]
    root = DATUMARO / folder
    found = discover(format_name, root)
    assert [(f.task, f.subset, f.path, f.root) for f in found] == [
        ("instances", subset, root / name, root) for name, subset, _ in expected
    ]
    for file, (_, _, images) in zip(found, expected):
        assert (root / images).resolve() in [folder.resolve() for folder in file.image_dirs()]


def test_a_task_format_reads_a_roboflow_file_as_its_task(tmp_path):
    [found] = discover("coco_person_keypoints", DATUMARO / "coco_roboflow" / "train")
    assert (found.task, found.subset) == ("person_keypoints", "train")


def test_subset_names_the_subset_of_a_single_file():
    path = DATUMARO / "kaggle_dataset" / "relaxed_coco" / "annotations.json"
    [found] = discover("coco_instances", path, subset="train")
    assert (found.task, found.subset) == ("instances", "train")
    [found] = discover("coco", DATUMARO / "kaggle_dataset" / "relaxed_coco", subset="val")
    assert found.subset == "val"
    [found] = discover("coco", DATUMARO / "coco_roboflow" / "val" / "_annotations.coco.json")
    assert (found.task, found.subset) == ("instances", "default")
    [found] = discover("coco_captions", DATUMARO / "coco" / "annotations" / "captions_val.json", subset="x")
    assert (found.task, found.subset) == ("captions", "x")


def test_subset_refuses_a_folder_of_several_files():
    with pytest.raises(OptionError) as error:
        discover("coco", DATUMARO / "mmdet_coco", subset="x")
    assert str(error.value) == (
        f"{DATUMARO / 'mmdet_coco'}: --subset names the subset of one annotation file, and this folder holds 2; "
        "import one of them (-r FILE) with --subset"
    )


def test_two_roboflow_files_of_one_subset_are_refused(tmp_path):
    for part in ("a", "b"):
        shutil.copytree(DATUMARO / "coco_roboflow" / "train", tmp_path / part / "train")
    with pytest.raises(ConflictError) as error:
        discover("coco", tmp_path)
    assert str(error.value) == (
        f"{tmp_path}: a/train/_annotations.coco.json and b/train/_annotations.coco.json both hold subset 'train'; "
        "import them as two sources (-r FOLDER)"
    )


def test_several_relaxed_files_are_refused(tmp_path):
    for name in ("one.json", "two.json", "dataset_meta.json"):
        (tmp_path / name).write_text("{}")
    with pytest.raises(ConflictError) as error:
        discover("coco", tmp_path)
    assert str(error.value) == (
        f"{tmp_path}: several annotation files of no COCO task name (one.json, two.json); import each with "
        "-r FILE --subset NAME"
    )


def test_a_folder_of_no_layout_says_where_it_looked(tmp_path):
    (tmp_path / "dataset_meta.json").write_text("{}")
    with pytest.raises(NotFoundError) as error:
        discover("coco", tmp_path)
    assert str(error.value) == (
        f"{tmp_path}: no coco annotation files found (looked for annotations/<task>_<subset>.json, "
        "<subset>/_annotations.coco.json, or one .json file beside the images)"
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_layout_round_trips(backend, tmp_path, layout):
    """Imported with `coco`, exported in COCO's layout with the images: every file comes back
    field for field, every image byte for byte; the export imports again, to the same files."""
    folder, expected = LAYOUTS[layout]
    root = DATUMARO / folder
    project = backend.create()
    result = import_dataset(project, "coco", root, name="first")
    assert result.missing_images == 0
    out = tmp_path / "out"
    exported = export_dataset(project, "coco", out, save_images=True)
    assert sorted(path.name for path in exported.files) == sorted(f"instances_{subset}.json" for _, subset, _ in expected)
    for name, subset, images in expected:
        original = json.loads((root / name).read_text())
        written = json.loads((out / "annotations" / f"instances_{subset}.json").read_text())
        assert json_difference(original, written) is None
        for image in original["images"]:
            assert _sha256(out / "images" / subset / image["file_name"]) == _sha256(root / images / image["file_name"])
    again = backend.create("again")
    assert import_dataset(again, "coco", out, name="again").missing_images == 0
    second = tmp_path / "second"
    export_dataset(again, "coco", second)
    for name, subset, _ in expected:
        original = json.loads((root / name).read_text())
        assert json_difference(original, json.loads((second / "annotations" / f"instances_{subset}.json").read_text())) is None
