"""An update of a big annotation file reads again only the windows that changed, and takes the
others' records from the stored rows (repo.model.windows). Whatever the edit, the layout of the
file and the project's history, it must store exactly what an update that reads the whole file
stores (the oracle: the same update with the remembered windows forgotten), export the edited
file as it is, and refuse a bad edit with the whole-file message, changing nothing. Files are
cut into small windows here, so that a small dataset has many. (Many cases come from a review
of the feature.)"""

from __future__ import annotations

import copy
import io
import json
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
from repo.history import checkout, commit
from repo.importing import import_dataset
from repo.labels import rename_label
from repo.model import chunked_json
from repo.project import Project
from repo.sources import update_source
from repo.store import positions, schema

TASKS = ["instances", "person_keypoints", "captions", "labels", "stuff", "image_info"]
_ROW_IDS = frozenset({"row_id", "id", "file_id", "item_id", "label_id", "source_id"})
_NOT_COMPARED = ("file_digests", "window_digests", "project", "revisions")  # caches, names, dates

Writer = Callable[[dict[str, Any]], bytes]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("window_reuse")
    generate(root, images=30, seed=11, tasks=TASKS)
    return root


@pytest.fixture(autouse=True)
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "WINDOWED_BYTES", 0)
    monkeypatch.setattr(chunked_json, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(chunked_json, "WINDOW_BYTES", 1500)


# -- layouts, projects and the oracle ------------------------------------------------------------

def compact(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document)


def pretty(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2).encode()


def bom_crlf(document: dict[str, Any]) -> bytes:
    return b"\xef\xbb\xbf" + json.dumps(document, indent=1).replace("\n", "\r\n").encode()


def annotations_first(document: dict[str, Any]) -> bytes:
    if "annotations" not in document:
        return orjson.dumps(document)
    return orjson.dumps({"annotations": document["annotations"], **document})


def _copy(dataset: Path, folder: Path, write: Writer = compact) -> Path:
    shutil.copytree(dataset, folder)
    for path in (folder / "annotations").glob("*.json"):
        path.write_bytes(write(load_json(path)))
    return folder


def _edit(folder: Path, name: str, change: Callable[[dict[str, Any]], None], write: Writer = compact) -> None:
    """Change one file, written in the same layout: the other windows keep their bytes."""
    path = folder / "annotations" / name
    document = load_json(path)
    change(document)
    path.write_bytes(write(document))


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


def _taken(result) -> list[str]:
    return [note for note in result.notes if "windows unchanged, not read again" in note]


def _check(backend, base: Path, edited: Path, tmp_path: Path, before=None, prefix: str = "", **options: Any) -> list[str]:
    """Import `base` into two projects, run `before(project)` on each, update both with `edited`
    (one with the windows forgotten): both store the same, and the export is `edited`.
    Returns the notes of windows taken."""
    projects = []
    for name in ("taking", "whole"):
        project = _imported(backend, prefix + name, base, **options)
        if before is not None:
            before(project)
        projects.append(project)
    taking, whole = projects
    _forget_windows(whole)
    result = update_source(taking, "src", edited)
    expected = update_source(whole, "src", edited)
    assert not _taken(expected)
    assert (result.changes.added, result.changes.changed, result.changes.removed) == (
        expected.changes.added, expected.changes.changed, expected.changes.removed
    )
    assert _stored(taking) == _stored(whole)
    out = tmp_path / "out"
    export_dataset(taking, "coco", out, sources=["src"])
    for path in sorted((edited / "annotations").glob("*.json")):
        assert_same_file(path, out / "annotations" / path.name)
    return _taken(result)


# -- edits of each task, in each layout ---------------------------------------------------------

def _set_field(index: int, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["annotations"][index][key] = value
    return change


def _set_box(document: dict[str, Any]) -> None:
    document["annotations"][20]["bbox"] = [1.5, 2.5, 3.5, 4.5]


def _longer_number(document: dict[str, Any]) -> None:
    document["annotations"][7]["bbox"][0] += 0.1234567891


def _inserted(document: dict[str, Any]) -> None:
    _inserted_at(12, 987_654)(document)


def _removed(document: dict[str, Any]) -> None:
    del document["annotations"][15]


def _moved_to_the_end(document: dict[str, Any]) -> None:
    document["annotations"].append(document["annotations"].pop(3))


def _block_moved(document: dict[str, Any]) -> None:
    annotations = document["annotations"]
    document["annotations"] = annotations[12:] + annotations[:12]


def _instances_other_image(document: dict[str, Any]) -> None:
    annotation = document["annotations"][100]
    others = [image["id"] for image in document["images"] if image["id"] != annotation["image_id"]]
    annotation["image_id"] = others[0]
    annotation.pop("segmentation", None)  # polygons need no image size


def _keypoints_moved(document: dict[str, Any]) -> None:
    annotation = document["annotations"][15]
    annotation["keypoints"] = [value + 1 if index % 3 != 2 else value for index, value in enumerate(annotation["keypoints"])]


def _caption_changed(document: dict[str, Any]) -> None:
    document["annotations"][70]["caption"] = "a changed caption"


def _label_changed(document: dict[str, Any]) -> None:
    categories = [category["id"] for category in document["categories"]]
    annotation = document["annotations"][30]
    annotation["category_id"] = next(c for c in categories if c != annotation["category_id"])


def _stuff_box(document: dict[str, Any]) -> None:
    document["annotations"][40]["bbox"] = [1, 2, 3, 4]


def _all_deleted(document: dict[str, Any]) -> None:
    document["annotations"] = []


def _appended(document: dict[str, Any]) -> None:
    added = copy.deepcopy(document["annotations"][-1])
    added["id"] = 987_654
    document["annotations"].append(added)


EDITS = [
    ("instances_val2017.json", _set_box),
    ("instances_val2017.json", _longer_number),
    ("instances_val2017.json", _inserted),
    ("instances_val2017.json", _removed),
    ("instances_val2017.json", _moved_to_the_end),
    ("instances_val2017.json", _block_moved),
    ("instances_val2017.json", _instances_other_image),
    ("instances_val2017.json", _all_deleted),
    ("instances_val2017.json", _appended),
    ("person_keypoints_val2017.json", _keypoints_moved),
    ("captions_val2017.json", _caption_changed),
    ("labels_val2017.json", _label_changed),
    ("stuff_val2017.json", _stuff_box),
]
LAYOUTS = [pretty, bom_crlf, annotations_first]  # besides compact, as the generator writes


@pytest.mark.parametrize("name,change", EDITS, ids=lambda e: getattr(e, "__name__", str(e)).strip("_"))
def test_an_edit_reads_again_only_its_windows_and_stores_what_a_whole_read_does(backend, dataset, tmp_path, name, change):
    base = _copy(dataset, tmp_path / "base")
    edited = _copy(base, tmp_path / "edited")
    _edit(edited, name, change)
    notes = _check(backend, base, edited, tmp_path)
    if change is not _all_deleted:  # the one case where every window changed
        [note] = notes
        taken, total = (int(word) for word in note.split(": ")[1].split()[0:3:2])
        assert 0 < taken < total


@pytest.mark.parametrize("write", LAYOUTS, ids=lambda write: write.__name__)
def test_any_layout_of_the_file(backend, dataset, tmp_path, write):
    base = _copy(dataset, tmp_path / "base", write)
    edited = _copy(base, tmp_path / "edited", write)
    _edit(edited, "instances_val2017.json", _longer_number, write)
    assert _check(backend, base, edited, tmp_path)


# -- the frame ---------------------------------------------------------------------------------

def _category_renamed(document: dict[str, Any]) -> None:
    document["categories"][0]["name"] = "renamed"


def _licenses_changed(document: dict[str, Any]) -> None:
    document["licenses"][0]["name"] = "changed"


def _image_resized(document: dict[str, Any]) -> None:
    used = {annotation["image_id"] for annotation in document.get("annotations", [])}
    image = next((image for image in document["images"] if image["id"] not in used), document["images"][0])
    image["width"] += 1


@pytest.mark.parametrize(
    "name,change",
    [("instances_val2017.json", _category_renamed), ("labels_val2017.json", _licenses_changed),
     ("instances_val2017.json", _image_resized), ("image_info_val2017.json", _image_resized)],
    ids=lambda e: getattr(e, "__name__", str(e)).strip("_"),
)
def test_frame_edit_matches_a_whole_read(backend, dataset, tmp_path, name, change):
    base = _copy(dataset, tmp_path / "base")
    edited = _copy(base, tmp_path / "edited")
    _edit(edited, name, change)
    _check(backend, base, edited, tmp_path)


# -- histories ---------------------------------------------------------------------------------

def _box(index: int, value: float) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["annotations"][index]["bbox"] = [value, value, value, value]
    return change


def test_two_updates_in_a_row(backend, dataset, tmp_path):
    base = _copy(dataset, tmp_path / "base")
    first = _copy(base, tmp_path / "first")
    _edit(first, "instances_val2017.json", _box(20, 1.5))
    _edit(first, "instances_val2017.json", _inserted_at(60, 900_001))
    second = _copy(first, tmp_path / "second")
    _edit(second, "instances_val2017.json", _box(150, 2.5))
    _edit(second, "instances_val2017.json", lambda d: d["annotations"].pop(90))
    _check(backend, base, second, tmp_path, before=lambda project: update_source(project, "src", first))
    _check(backend, base, second, tmp_path / "c", prefix="c",
           before=lambda project: (update_source(project, "src", first), commit(project, "x")))


def _inserted_at(index: int, new_id: int) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        added = copy.deepcopy(document["annotations"][index])
        added["id"] = new_id
        document["annotations"].insert(index + 1, added)
    return change


def test_back_and_forth(backend, dataset, tmp_path):
    """base -> edited -> base again: the second update goes back to bytes remembered before."""
    base = _copy(dataset, tmp_path / "base")
    edited = _copy(base, tmp_path / "edited")
    _edit(edited, "instances_val2017.json", _box(20, 1.5))
    again = _copy(base, tmp_path / "again")
    _check(backend, base, again, tmp_path, before=lambda project: update_source(project, "src", edited))


def test_update_after_checkout(backend, dataset, tmp_path):
    base = _copy(dataset, tmp_path / "base")
    edited = _copy(base, tmp_path / "edited")
    _edit(edited, "instances_val2017.json", _box(20, 1.5))
    _edit(edited, "instances_val2017.json", _block_moved)
    third = _copy(base, tmp_path / "third")
    _edit(third, "instances_val2017.json", _box(150, 2.5))

    def history(project: Project) -> None:
        commit(project, "base")
        update_source(project, "src", edited)
        commit(project, "edited")
        checkout(project, "HEAD~1")

    _check(backend, base, third, tmp_path, before=history)


def test_update_after_label_rename(backend, dataset, tmp_path):
    base = _copy(dataset, tmp_path / "base")
    edited = _copy(base, tmp_path / "edited")
    _edit(edited, "instances_val2017.json", _box(20, 1.5))
    name = load_json(base / "annotations" / "instances_val2017.json")["categories"][0]["name"]
    _check(backend, base, edited, tmp_path, before=lambda project: rename_label(project, name, "renamed"))


def test_update_after_an_import_that_skipped(backend, dataset, tmp_path):
    bad = _copy(dataset, tmp_path / "bad")
    _edit(bad, "instances_val2017.json", _set_field(50, "bbox", "not a box"))
    edited = _copy(dataset, tmp_path / "edited")
    _edit(edited, "instances_val2017.json", _box(20, 1.5))
    _check(backend, bad, edited, tmp_path, on_error="skip")


def test_two_sources_with_the_same_files(backend, dataset, tmp_path):
    base = _copy(dataset, tmp_path / "base")
    edited = _copy(base, tmp_path / "edited")
    _edit(edited, "instances_val2017.json", _box(20, 1.5))
    other = _copy(dataset, tmp_path / "other")
    for path in (other / "annotations").glob("*.json"):
        document = load_json(path)
        for annotation in document.get("annotations", []):
            annotation["id"] += 50_000_000
        path.write_bytes(compact(document))
    _check(backend, base, edited, tmp_path,
           before=lambda project: import_dataset(project, "coco", other, name="other"))


def test_a_label_map_applies_to_the_records_read_and_not_again_to_those_taken(backend, dataset, tmp_path):
    """The stored rows of taken records are already renamed, merged or dropped (an export is
    of the mapped labels, so only the stores are compared)."""
    base = _copy(dataset, tmp_path / "base")
    document = load_json(base / "annotations" / "instances_val2017.json")
    used = {annotation["category_id"] for annotation in document["annotations"]}
    unused = next(c["name"] for c in document["categories"] if c["id"] not in used)
    merged = [c["name"] for c in document["categories"] if c["id"] in used][:2]
    edited = _copy(base, tmp_path / "edited")
    _edit(edited, "instances_val2017.json", _box(20, 1.5))
    label_map = {unused: None, merged[1]: merged[0]}
    taking, whole = (_imported(backend, name, base, label_map=label_map) for name in ("taking", "whole"))
    _forget_windows(whole)
    assert _taken(update_source(taking, "src", edited))
    update_source(whole, "src", edited)
    assert _stored(taking) == _stored(whole)


def test_under_skip_every_window_is_read(backend, dataset, tmp_path):
    edited = _copy(dataset, tmp_path / "edited")
    _edit(edited, "instances_val2017.json", _box(20, 1.5))
    project = _imported(backend, "project", dataset)
    result = update_source(project, "src", edited, on_error="skip")
    assert not _taken(result) and result.changes.changed == {"annotations": 1}


@pytest.mark.parametrize("later", [False, True], ids=["repeats-an-earlier-window", "repeats-a-later-window"])
def test_an_id_repeated_from_a_window_not_read_again_fails_as_a_whole_read_does(backend, dataset, tmp_path, later):
    def repeated_id(document: dict[str, Any]) -> None:
        annotations = document["annotations"]
        edited, other = (5, len(annotations) - 5) if later else (len(annotations) - 5, 5)
        annotations[edited]["id"] = annotations[other]["id"]

    edited = _copy(dataset, tmp_path / "edited")
    _edit(edited, "instances_val2017.json", repeated_id)
    with pytest.raises(InputError) as whole_read:
        import_dataset(backend.create("fresh"), "coco", edited, name="src")
    project = _imported(backend, "project", dataset)
    before = database_contents(project)
    with pytest.raises(InputError) as update:
        update_source(project, "src", edited)
    assert str(update.value) == str(whole_read.value) and "listed twice" in str(update.value)
    assert database_contents(project) == before


# -- the error path ------------------------------------------------------------------------------

@pytest.mark.parametrize("problem", ["bad-box", "repeated-key", "duplicate-window", "non-object"])
def test_a_bad_edit_fails_as_a_whole_read_and_changes_nothing(backend, dataset, tmp_path, problem):
    base = _copy(dataset, tmp_path / "base")
    edited = _copy(base, tmp_path / "edited")
    path = edited / "annotations" / "instances_val2017.json"
    if problem == "bad-box":
        _edit(edited, "instances_val2017.json", _set_field(150, "bbox", [1, 2, 3]))
    elif problem == "repeated-key":
        data = path.read_bytes()
        start = data.index(b'"id":', len(data) // 2)
        path.write_bytes(data[:start] + b'"iscrowd":0,' + data[start:])
    elif problem == "duplicate-window":
        data = path.read_bytes()
        document = load_json(path)
        copied = b"," + b",".join(orjson.dumps(a) for a in document["annotations"][30:60])
        end = data.index(orjson.dumps(document["annotations"][100])) + len(orjson.dumps(document["annotations"][100]))
        path.write_bytes(data[:end] + copied + data[end:])
    else:
        data = path.read_bytes()
        middle = data.index(b"},{", len(data) // 2)
        path.write_bytes(data[:middle] + b"},5,{" + data[middle + 3:])
    fresh = backend.create("fresh")
    with pytest.raises(InputError) as whole_read:
        import_dataset(fresh, "coco", edited, name="src")
    project = backend.create("project")
    import_dataset(project, "coco", base, name="src")
    before = database_contents(project)
    with pytest.raises(InputError) as update:
        update_source(project, "src", edited)
    assert str(update.value) == str(whole_read.value)
    assert "\n" not in str(update.value)
    assert database_contents(project) == before


# -- cuts ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    b'{"images": [], "annotations": []}',
    b'{"images": [], "annotations": [1, 2, 3]}',
    b'{"images": [], "annotations": [[], [[]], {}, "x", null]}',
    b'{"annotations": [{}], "images": [{}]}',
    b'\xef\xbb\xbf{"annotations": [ ] }',
    b'{}',
    b'{"a": {"b": [{"c": 1}]}}',
])
def test_unusual_inputs_scan(text, monkeypatch):
    for block in (1, 2, 3, 64):
        monkeypatch.setattr(chunked_json, "BLOCK_BYTES", block)
        chunked = chunked_json.read_chunked(io.BytesIO(text), frozenset({"images", "annotations"}))
        for key in chunked.spans:
            list(chunked.windows(key))
            chunked.frame_digest(key)


def test_renumbered_with_a_label_map(backend, dataset, tmp_path, monkeypatch):
    """Records sit 2 apart here, so two inserted between neighbours renumber the whole file:
    every record taken from the rows gets a new version, made from its stored row."""
    monkeypatch.setattr(positions, "POSITION_STEP", 2)
    base = _copy(dataset, tmp_path / "base")
    document = load_json(base / "annotations" / "instances_val2017.json")
    names = [c["name"] for c in document["categories"]]
    edited = _copy(base, tmp_path / "edited")
    _edit(edited, "instances_val2017.json", _inserted_at(30, 900_001))
    _edit(edited, "instances_val2017.json", _inserted_at(31, 900_002))
    label_map = {names[1]: names[0], names[2]: "renamed"}
    projects = []
    for name in ("taking", "whole"):
        project = backend.create(name)
        import_dataset(project, "coco", base, name="src", label_map=label_map)
        commit(project, "base")
        projects.append(project)
    _forget_windows(projects[1])
    assert _taken(update_source(projects[0], "src", edited))
    update_source(projects[1], "src", edited)
    assert _stored(projects[0]) == _stored(projects[1])


def test_update_after_commit(backend, dataset, tmp_path):
    base = _copy(dataset, tmp_path / "base")
    edited = _copy(base, tmp_path / "edited")
    _edit(edited, "instances_val2017.json", _box(20, 1.5))
    _edit(edited, "instances_val2017.json", _inserted_at(100, 900_001))
    _edit(edited, "captions_val2017.json", _caption_changed)
    assert _check(backend, base, edited, tmp_path, before=lambda project: commit(project, "base"))


@pytest.fixture(scope="module")
def edge_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Records whose fields must come back from their rows exactly: big integers, tiny and
    negative-zero floats, NUL characters, nested key order."""
    root = tmp_path_factory.mktemp("window_reuse_edge")
    generate(root, images=30, seed=7, tasks=["instances", "person_keypoints", "captions", "labels", "stuff"],
             edge_cases=True)
    for path in (root / "annotations").glob("*.json"):
        document = load_json(path)
        annotations = document["annotations"]
        annotations[-1]["x_odd"] = {"b": [1e-320, -0.0, 2**70, 1.0, 123456789012345678901234567890], "a": "\u0000é"}
        annotations[-2]["attributes"] = {"z": 1, "a": [0.1, {"y": None, "x": -0.0}]}
        path.write_bytes(_standard(document))
    return root


def _standard(document: dict[str, Any]) -> bytes:
    """The standard library's writer: orjson refuses integers beyond 64 bits."""
    return json.dumps(document).encode()


@pytest.mark.parametrize("name", ["instances_val2017.json", "person_keypoints_val2017.json", "stuff_val2017.json"])
def test_edge_records_written_again_from_their_rows(backend, edge_dataset, tmp_path, monkeypatch, name):
    monkeypatch.setattr(positions, "POSITION_STEP", 2)
    base = _copy(edge_dataset, tmp_path / "base", _standard)
    edited = _copy(base, tmp_path / "edited", _standard)

    def two_at_the_front(document: dict[str, Any]) -> None:
        for new_id in (900_000_001, 900_000_002):
            added = copy.deepcopy(document["annotations"][0])
            added["id"] = new_id
            document["annotations"].insert(1, added)
        document["annotations"][-3]["x_new"] = 1  # a read window near the end too

    _edit(edited, name, two_at_the_front, _standard)
    assert _check(backend, base, edited, tmp_path)


def test_tiny_files(backend, tmp_path):
    base = tmp_path / "base"
    (base / "annotations").mkdir(parents=True)
    path = base / "annotations" / "instances_val2017.json"
    path.write_bytes(b'{"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}], "annotations": [], '
                     b'"categories": [{"id": 1, "name": "a"}]}')
    edited = _copy(base, tmp_path / "edited")
    _edit(edited, "instances_val2017.json", lambda d: d["annotations"].append(
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}))
    _check(backend, base, edited, tmp_path)
    _check(backend, edited, base, tmp_path / "back", prefix="back")


def test_two_subsets_with_the_same_bytes(backend, dataset, tmp_path):
    """The remembered windows are by the file's bytes: two files of these bytes share them."""
    base = _copy(dataset, tmp_path / "base")
    for path in list((base / "annotations").glob("*_val2017.json")):
        shutil.copy(path, path.with_name(path.name.replace("val2017", "train2017")))
    edited = _copy(base, tmp_path / "edited")
    _edit(edited, "instances_val2017.json", _box(20, 1.5))
    _edit(edited, "instances_train2017.json", _inserted_at(100, 900_001))
    assert len(_check(backend, base, edited, tmp_path)) == 2
