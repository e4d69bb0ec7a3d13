"""A folder's problems are reported in file order, whatever the task: with a panoptic file in
the middle (its PNGs decoded on worker threads), the first problem in file order is the one
reported, records skipped under `on_error="skip"` come in file order, and a failed import
leaves the database as it was.

Files are read in Datumaro's task order: instances before panoptic, stuff after it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gen_coco import generate
from helpers import Backend, database_contents
from repo.errors import InputError
from repo.importing import import_dataset

TASKS = ("instances", "panoptic", "stuff")


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    generate(tmp_path / "data", images=8, tasks=TASKS)
    return tmp_path / "data"


def edit(dataset: Path, task: str, change) -> None:
    path = dataset / "annotations" / f"{task}_val2017.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def bad_bbox(document: dict) -> None:
    document["annotations"][2]["bbox"] = "wide"


def bad_segments(document: dict) -> None:
    document["annotations"][1]["segments_info"] = 5


def remove_png(dataset: Path) -> str:
    """Removes the PNG of the panoptic file's fifth record; returns its name."""
    annotations = dataset / "annotations"
    name = json.loads((annotations / "panoptic_val2017.json").read_text())["annotations"][4]["file_name"]
    (annotations / "panoptic_val2017" / name).unlink()
    return name


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_problem_before_the_panoptic_file_is_reported_first(
    backend: Backend, dataset: Path, monkeypatch: pytest.MonkeyPatch, workers: str
):
    monkeypatch.setenv("DSREPO_WORKERS", workers)
    edit(dataset, "instances", bad_bbox)
    edit(dataset, "panoptic", bad_segments)
    project = backend.create()
    before = database_contents(project)
    with pytest.raises(InputError) as raised:
        import_dataset(project, "coco", dataset)
    assert raised.value.file.endswith("instances_val2017.json")
    assert raised.value.field == "bbox"
    assert database_contents(project) == before


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_missing_png_is_reported_before_a_problem_after_the_panoptic_file(
    backend: Backend, dataset: Path, monkeypatch: pytest.MonkeyPatch, workers: str
):
    monkeypatch.setenv("DSREPO_WORKERS", workers)
    missing = remove_png(dataset)
    edit(dataset, "stuff", bad_bbox)
    project = backend.create()
    before = database_contents(project)
    with pytest.raises(InputError) as raised:
        import_dataset(project, "coco", dataset)
    assert raised.value.file.endswith(missing)
    assert database_contents(project) == before


def test_a_bad_panoptic_file_is_reported_before_a_problem_after_it(backend: Backend, dataset: Path):
    edit(dataset, "panoptic", bad_segments)
    edit(dataset, "stuff", bad_bbox)
    project = backend.create()
    with pytest.raises(InputError) as raised:
        import_dataset(project, "coco", dataset)
    assert raised.value.file.endswith("panoptic_val2017.json")
    assert raised.value.field == "segments_info"


def test_skipped_records_come_in_file_order(backend: Backend, dataset: Path):
    edit(dataset, "instances", bad_bbox)
    edit(dataset, "panoptic", bad_segments)
    missing = remove_png(dataset)
    edit(dataset, "stuff", bad_bbox)
    project = backend.create()
    result = import_dataset(project, "coco", dataset, on_error="skip")
    where = [(Path(error.file).name, error.field) for error in result.skipped]
    assert where == [
        ("instances_val2017.json", "bbox"),
        ("panoptic_val2017.json", "segments_info"),
        (missing, "file_name"),
        ("stuff_val2017.json", "bbox"),
    ]
