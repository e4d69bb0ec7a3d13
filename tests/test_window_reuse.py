"""An update of a big annotation file reads again only the windows that changed, and takes the
others' records from the stored rows (repo.model.windows). Whatever the edit, it must store
exactly what an update that reads the whole file stores (the oracle: the same update with the
remembered windows forgotten), export the edited file as it is, and refuse a bad edit with the
whole-file message. Files are cut into small windows here, so that a small dataset has many."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import delete

from gen_coco import generate
from helpers import assert_same_file, database_contents, load_json
from repo.coco import reader
from repo.errors import InputError
from repo.exporting import export_dataset
from repo.importing import import_dataset
from repo.model import chunked_json
from repo.project import Project
from repo.sources import update_source
from repo.store import positions, schema

INSTANCES = "instances_val2017.json"
_ROW_IDS = frozenset({"row_id", "id", "file_id", "item_id", "label_id", "source_id"})
_NOT_COMPARED = ("file_digests", "window_digests", "project")  # caches, and the project's own name


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("windows")
    generate(root, images=30, seed=11, tasks=["instances", "captions"])
    return root


@pytest.fixture(autouse=True)
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "WINDOWED_BYTES", 0)
    monkeypatch.setattr(chunked_json, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(chunked_json, "WINDOW_BYTES", 1500)


def _edited(dataset: Path, tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    folder = tmp_path / "edited"
    shutil.copytree(dataset, folder)
    path = folder / "annotations" / INSTANCES
    document = load_json(path)
    change(document)
    path.write_bytes(orjson.dumps(document))  # as the generator wrote it: other windows keep their bytes
    return folder


def _imported(backend, name: str, dataset: Path, **options: Any) -> Project:
    project = backend.create(name)
    import_dataset(project, "coco", dataset, name="src", **options)
    return project


def _forget_windows(project: Project) -> None:
    with project.writing() as connection:
        connection.execute(delete(schema.window_digests))


def _stored(project: Project) -> dict[str, list[tuple[Any, ...]]]:
    """Every table but the caches, without the row ids PostgreSQL draws from one sequence."""
    contents = database_contents(project)
    rows = {}
    for table in (key for key in contents if not key.startswith(("schema:", "views")) and key not in _NOT_COMPARED):
        [columns] = contents[f"schema:{table}"]
        kept = [place for place, column in enumerate(columns) if column not in _ROW_IDS]
        rows[table] = sorted((tuple(row[place] for place in kept) for row in contents[table]), key=repr)
    return rows


def _taken_note(result) -> list[str]:
    return [note for note in result.notes if "windows unchanged, not read again" in note]


def _assert_like_a_whole_read(backend, dataset: Path, edited: Path, tmp_path: Path, **options: Any) -> list[str]:
    """Update a fresh import of `dataset` with `edited`, and the same with its windows
    forgotten; both store the same, and export the edited files. Returns the update's notes
    of windows taken."""
    taking = _imported(backend, "taking", dataset, **options)
    whole = _imported(backend, "whole", dataset, **options)
    _forget_windows(whole)
    result = update_source(taking, "src", edited)
    expected = update_source(whole, "src", edited)
    assert not _taken_note(expected)
    assert (result.changes.added, result.changes.changed, result.changes.removed) == (
        expected.changes.added, expected.changes.changed, expected.changes.removed
    )
    assert _stored(taking) == _stored(whole)
    out = tmp_path / "out"
    export_dataset(taking, "coco", out)
    for name in (INSTANCES, "captions_val2017.json"):
        assert_same_file(edited / "annotations" / name, out / "annotations" / name)
    return _taken_note(result)


def _set_box(document: dict[str, Any]) -> None:
    document["annotations"][20]["bbox"] = [1.5, 2.5, 3.5, 4.5]


def _longer_number(document: dict[str, Any]) -> None:
    document["annotations"][7]["bbox"][0] += 0.1234567891


def _inserted(document: dict[str, Any]) -> None:
    added = copy.deepcopy(document["annotations"][12])
    added["id"] = 987_654
    document["annotations"].insert(13, added)


def _removed(document: dict[str, Any]) -> None:
    del document["annotations"][15]


def _moved_to_the_end(document: dict[str, Any]) -> None:
    document["annotations"].append(document["annotations"].pop(3))


def _block_moved(document: dict[str, Any]) -> None:
    annotations = document["annotations"]
    document["annotations"] = annotations[12:] + annotations[:12]


EDITS = [_set_box, _longer_number, _inserted, _removed, _moved_to_the_end, _block_moved]


@pytest.mark.parametrize("change", EDITS, ids=lambda change: change.__name__.strip("_"))
def test_an_edit_reads_again_only_its_windows_and_stores_what_a_whole_read_does(backend, dataset, tmp_path, change):
    [note] = _assert_like_a_whole_read(backend, dataset, _edited(dataset, tmp_path, change), tmp_path)
    taken, total = (int(word) for word in note.split(": ")[1].split()[0:3:2])
    assert 0 < taken < total


def test_a_renumbered_file_writes_the_records_taken_from_the_rows_whole(backend, dataset, tmp_path, monkeypatch):
    """Records sit 2 apart here, so two inserted between neighbours renumber the whole file:
    every record taken from the rows gets a new version, made from the stored row."""
    monkeypatch.setattr(positions, "POSITION_STEP", 2)

    def two_inserted(document: dict[str, Any]) -> None:
        for offset, new_id in enumerate((987_654, 987_655)):
            added = copy.deepcopy(document["annotations"][30])
            added["id"] = new_id
            document["annotations"].insert(31 + offset, added)

    assert _assert_like_a_whole_read(backend, dataset, _edited(dataset, tmp_path, two_inserted), tmp_path)


def test_a_changed_image_makes_the_whole_file_read_again(backend, dataset, tmp_path):
    """The captions file, whose bytes did not change, is read again as well (an image it
    lists changed): its windows are all taken, its images written anew."""
    edited = _edited(dataset, tmp_path, lambda document: document["images"][4].update(license=3))
    notes = _assert_like_a_whole_read(backend, dataset, edited, tmp_path)
    assert [note for note in notes if INSTANCES in note] == []
    [captions] = notes
    taken, total = (int(word) for word in captions.split(": ")[1].split()[0:3:2])
    assert taken == total


def test_a_label_map_applies_to_the_records_read_and_not_again_to_those_taken(backend, dataset, tmp_path):
    categories = load_json(dataset / "annotations" / INSTANCES)["categories"]
    label_map = {categories[1]["name"]: categories[0]["name"], categories[2]["name"]: categories[0]["name"]}
    edited = _edited(dataset, tmp_path, _set_box)
    taking = _imported(backend, "taking", dataset, label_map=label_map)
    whole = _imported(backend, "whole", dataset, label_map=label_map)
    _forget_windows(whole)
    assert _taken_note(update_source(taking, "src", edited))
    update_source(whole, "src", edited)
    assert _stored(taking) == _stored(whole)


def test_under_skip_every_window_is_read(backend, dataset, tmp_path):
    project = _imported(backend, "project", dataset)
    result = update_source(project, "src", _edited(dataset, tmp_path, _set_box), on_error="skip")
    assert not _taken_note(result) and result.changes.changed == {"annotations": 1}


@pytest.mark.parametrize("later", [False, True], ids=["repeats-an-earlier-window", "repeats-a-later-window"])
def test_an_id_repeated_from_a_window_not_read_again_fails_as_a_whole_read_does(backend, dataset, tmp_path, later):
    def repeated_id(document: dict[str, Any]) -> None:
        annotations = document["annotations"]
        edited, other = (5, len(annotations) - 5) if later else (len(annotations) - 5, 5)
        annotations[edited]["id"] = annotations[other]["id"]

    edited = _edited(dataset, tmp_path, repeated_id)
    fresh = backend.create("fresh")
    with pytest.raises(InputError) as whole_read:
        import_dataset(fresh, "coco", edited, name="src")
    project = _imported(backend, "project", dataset)
    before = database_contents(project)
    with pytest.raises(InputError) as update:
        update_source(project, "src", edited)
    assert str(update.value) == str(whole_read.value) and "listed twice" in str(update.value)
    assert database_contents(project) == before
