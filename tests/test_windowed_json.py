"""Big files read in windows (repo/model/chunked_json.py): the pieces parse exactly as the whole
text does, and an import read in windows writes, exports and refuses exactly what a whole-file
import does. Windows and blocks are made tiny here so that small files cut into many."""

from __future__ import annotations

import io
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from gen_coco import generate
from helpers import assert_same_file, database_contents
from repo.coco import reader
from repo.errors import InputError
from repo.exporting import export_dataset
from repo.importing import import_dataset
from repo.model import chunked_json
from repo.model.chunked_json import ChunkError, read_chunked
from repo.sources import update_source

WINDOWED = frozenset({"images", "annotations"})


@pytest.fixture
def tiny_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunked_json, "BLOCK_BYTES", 37)
    monkeypatch.setattr(chunked_json, "WINDOW_BYTES", 50)


def read_in_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on every non-panoptic file is read in tiny windows."""
    monkeypatch.setattr(reader, "WINDOWED_BYTES", 0)
    monkeypatch.setattr(chunked_json, "BLOCK_BYTES", 37)
    monkeypatch.setattr(chunked_json, "WINDOW_BYTES", 50)


# -- the pieces ------------------------------------------------------------------------------

def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise ValueError("duplicate key")
    return dict(pairs)


def plain_json(text: bytes) -> Any:
    """The oracle: the standard library, refusing repeated keys and a value that is no object."""
    try:
        value = json.loads(text, object_pairs_hook=_refuse_duplicates)
    except ValueError:
        return "refused"
    return value if isinstance(value, dict) else "refused"


def in_windows(text: bytes) -> Any:
    try:
        chunked = read_chunked(io.BytesIO(text), WINDOWED)
        document = chunked.document
        for key in chunked.spans:
            document[key] = []
            for window in chunked.windows(key):
                window.refuse_repeated_keys()
                document[key].extend(window.elements)
        return document
    except ChunkError:
        return "refused"


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice('ab"\\[]{}:, \u00e9') for _ in range(rng.randint(0, 6)))


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.4:
        return rng.choice([1, -2.5, None, True, _random_text(rng), 12345678901234567890123])
    if roll < 0.7:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_random_text(rng): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _random_document(rng: random.Random) -> dict[str, Any]:
    keys = rng.sample(["info", "images", "annotations", "categories", "other"], rng.randint(1, 5))
    return {
        key: [_random_value(rng, 1) for _ in range(rng.randint(0, 12))] if rng.random() < 0.8 else _random_value(rng)
        for key in keys
    }


def _damaged(text: bytes, rng: random.Random) -> bytes:
    data = bytearray(text)
    for _ in range(rng.randint(1, 2)):
        at = rng.randrange(len(data) + 1)
        if rng.random() < 0.4 and data:
            del data[at:at + 1]
        else:
            data[at:at] = rng.choice([b",", b'"', b"\\", b"[", b"]", b"{", b"}", b" ", b"1", b":", b'"a":1,'])
    return bytes(data)


def test_pieces_parse_as_the_whole_text_does(tiny_windows):
    rng = random.Random(5)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(6000):
        text = json.dumps(_random_document(rng), indent=rng.choice([None, 1])).encode()
        if rng.random() < 0.7:
            text = _damaged(text, rng)
        expected = plain_json(text)
        assert in_windows(text) == expected, text
        outcomes["refused" if expected == "refused" else "parsed"] += 1
    assert min(outcomes.values()) > 1000  # both kinds were tried


def test_windows_hold_whole_elements_and_cut_big_arrays(tiny_windows):
    elements = [{"id": n, "s": '"]}\\' * (n % 3), "v": [n, [n]]} for n in range(40)]
    text = json.dumps({"annotations": elements, "info": {"a": [1]}}).encode()
    chunked = read_chunked(io.BytesIO(b"\xef\xbb\xbf" + text), WINDOWED)
    windows = list(chunked.windows("annotations"))
    assert len(windows) > 5 and [e for w in windows for e in w.elements] == elements
    assert chunked.document == {"annotations": [], "info": {"a": [1]}}


def test_a_window_refuses_a_repeated_key_with_or_without_a_count(tiny_windows):
    """A window's keys are counted by the reader of its records, or else by the window; either
    way a key an object repeats is refused, and only then."""
    elements = [{"id": n, "v": [n, {"k": n}]} for n in range(30)]
    text = json.dumps({"annotations": elements}).encode()
    repeated = text.replace(b'{"k": 17}', b'{"k": 17, "k": 18}')
    for data, refused in ((text, False), (repeated, True)):
        for counted in (False, True):
            outcomes = []
            for window in read_chunked(io.BytesIO(data), WINDOWED).windows("annotations"):
                keys = sum(2 + 1 for _ in window.elements) if counted else None  # id, v and k
                try:
                    window.refuse_repeated_keys(keys)
                    outcomes.append(False)
                except ChunkError:
                    outcomes.append(True)
            assert any(outcomes) == refused and outcomes.count(True) <= 1


# -- imports ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def edge_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("edge")
    generate(root, images=24, seed=7, edge_cases=True)
    return root


_STORED_TABLES = ("files", "categories", "labels", "items", "file_images", "annotations", "panoptic_records")
_ROW_IDS = frozenset({"row_id", "id", "file_id", "item_id", "label_id", "source_id"})


def _stored_rows(project) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of the tables an import writes, without the row ids PostgreSQL draws from one
    sequence for all tables (so they depend on the order tables are written in)."""
    contents = database_contents(project)
    rows = {}
    for table in _STORED_TABLES:
        [columns] = contents[f"schema:{table}"]
        kept = [place for place, column in enumerate(columns) if column not in _ROW_IDS]
        rows[table] = sorted((tuple(row[place] for place in kept) for row in contents[table]), key=repr)
    return rows


def test_a_windowed_import_writes_the_same_rows_and_exports_losslessly(backend, edge_dataset, tmp_path, monkeypatch):
    whole = backend.create("whole")
    import_dataset(whole, "coco", edge_dataset)
    read_in_windows(monkeypatch)
    project = backend.create("windowed")
    result = import_dataset(project, "coco", edge_dataset)
    assert result.images == 24
    expected, actual = _stored_rows(whole), _stored_rows(project)
    assert actual == expected
    out = tmp_path / "out"
    export_dataset(project, "coco", out)
    for path in (edge_dataset / "annotations").glob("*.json"):
        assert_same_file(path, out / "annotations" / path.name)


def _instances(root: Path) -> Path:
    return next((root / "annotations").glob("instances_*.json"))


def _import_error(backend, name: str, data: Path, on_error: str) -> str:
    project = backend.create(name)
    before = database_contents(project)
    with pytest.raises(InputError) as caught:
        import_dataset(project, "coco_instances", data, on_error=on_error)
    assert database_contents(project) == before
    return str(caught.value)


def _broken_files(root: Path) -> dict[str, bytes]:
    """Instances files with one problem late in the file, after one bad record early on."""
    document = json.loads(_instances(root).read_text())
    document["annotations"][1]["category_id"] = "seven"  # a bad record, early
    text = json.dumps(document)
    head, tail = text.rsplit('"iscrowd"', 1)
    return {
        "a bad record": text.encode(),
        "bad JSON after a bad record": text[:-40].encode() + b"]}",
        "a repeated key late in the file": (head + '"iscrowd": 0, "iscrowd"' + tail).encode(),
        "an image listed twice": json.dumps({**document, "images": [*document["images"], document["images"][0]]}).encode(),
    }


@pytest.mark.parametrize(("problem", "on_error"), [
    ("a bad record", "fail"), ("an image listed twice", "fail"),
    ("bad JSON after a bad record", "fail"), ("bad JSON after a bad record", "skip"),
    ("a repeated key late in the file", "fail"), ("a repeated key late in the file", "skip"),
])
def test_a_windowed_import_refuses_what_a_whole_file_import_refuses(backend, edge_dataset, tmp_path, monkeypatch,
                                                                    problem, on_error):
    data = tmp_path / "data"
    (data / "annotations").mkdir(parents=True)
    target = data / "annotations" / _instances(edge_dataset).name
    target.write_bytes(_broken_files(edge_dataset)[problem])
    expected = _import_error(backend, "whole", data, on_error)
    read_in_windows(monkeypatch)
    actual = _import_error(backend, "windowed", data, on_error)
    assert actual == expected


def test_a_windowed_import_skips_what_a_whole_file_import_skips(backend, edge_dataset, tmp_path, monkeypatch):
    document = json.loads(_instances(edge_dataset).read_text())
    for index in (1, len(document["annotations"]) - 2):
        document["annotations"][index]["bbox"] = [1, 2]
    document["images"][-1]["width"] = 0
    data = tmp_path / "data"
    (data / "annotations").mkdir(parents=True)
    (data / "annotations" / _instances(edge_dataset).name).write_text(json.dumps(document))

    def skipped(name: str) -> list[str]:
        result = import_dataset(backend.create(name), "coco_instances", data, on_error="skip",
                                error_report=tmp_path / "report.json")
        return [str(error) for error in result.skipped]

    expected = skipped("whole")
    assert len(expected) >= 3
    read_in_windows(monkeypatch)
    assert skipped("windowed") == expected


# -- panoptic files: each part's PNGs cut as the part is taken --------------------------------

def _panoptic_copy(edge_dataset: Path, tmp_path: Path, change=None) -> tuple[Path, dict[str, Any]]:
    """A copy of the edge dataset's panoptic file and PNGs, its document changed by `change`."""
    data = tmp_path / "panoptic"
    annotations = data / "annotations"
    annotations.mkdir(parents=True)
    source = next((edge_dataset / "annotations").glob("panoptic_*.json"))
    shutil.copytree(source.with_suffix(""), annotations / source.stem)
    document = json.loads(source.read_text())
    if change is not None:
        change(document)
    (annotations / source.name).write_text(json.dumps(document))
    return data, document


def _break_png(data: Path, document: dict[str, Any], index: int) -> None:
    """Cut short the PNG of the panoptic file's record `index`."""
    png = next((data / "annotations").glob("panoptic_*/")) / document["annotations"][index]["file_name"]
    png.write_bytes(png.read_bytes()[:40])


def _late_bad_segment(document: dict[str, Any]) -> None:
    document["annotations"][-2]["segments_info"][0]["category_id"] = "seven"


def _panoptic_import_error(backend, name: str, data: Path) -> str:
    project = backend.create(name)
    before = database_contents(project)
    with pytest.raises(InputError) as caught:
        import_dataset(project, "coco_panoptic", data)
    assert database_contents(project) == before
    return str(caught.value)


@pytest.mark.parametrize("late_bad_record", [False, True])
def test_a_panoptic_file_in_windows_fails_as_a_whole_file_does(
    backend, edge_dataset, tmp_path, monkeypatch, late_bad_record
):
    """A PNG of the first part is cut short. A whole-file import checks every record before it
    decodes a PNG, so a bad record late in the file is its first problem; a file read in parts
    meets the PNG first and must still name that record."""
    data, document = _panoptic_copy(edge_dataset, tmp_path, _late_bad_segment if late_bad_record else None)
    _break_png(data, document, 0)
    expected = _panoptic_import_error(backend, "whole", data)
    assert ("category_id" in expected) == late_bad_record
    read_in_windows(monkeypatch)
    assert _panoptic_import_error(backend, "windowed", data) == expected


def test_a_panoptic_file_in_windows_skips_what_a_whole_file_skips(backend, edge_dataset, tmp_path, monkeypatch):
    """The same records are skipped; a whole file reports its records' problems before its
    PNGs', a file read in parts each part's in turn."""
    data, document = _panoptic_copy(edge_dataset, tmp_path, _late_bad_segment)
    _break_png(data, document, 0)

    def skipped(name: str) -> tuple[list[str], dict[str, list[tuple[Any, ...]]]]:
        project = backend.create(name)
        result = import_dataset(project, "coco_panoptic", data, on_error="skip", error_report=tmp_path / "r.json")
        return sorted(str(error) for error in result.skipped), _stored_rows(project)

    expected = skipped("whole")
    assert len(expected[0]) == 2
    read_in_windows(monkeypatch)
    assert skipped("windowed") == expected


def test_an_update_of_a_panoptic_file_in_windows_reuses_its_pngs(backend, edge_dataset, tmp_path, monkeypatch):
    """An update matches a stored file whole (its parts gathered); PNGs whose bytes did not
    change are not decoded again, and the note says so, as for a whole file."""
    data, _ = _panoptic_copy(edge_dataset, tmp_path)
    _, changed = _panoptic_copy(edge_dataset, tmp_path / "changed", lambda d: d["annotations"].pop(3))
    newer = tmp_path / "changed" / "panoptic"

    def updated(name: str) -> tuple[list[str], dict[str, list[tuple[Any, ...]]]]:
        project = backend.create(name)
        import_dataset(project, "coco_panoptic", data, name="src")
        result = update_source(project, "src", newer)
        return result.notes, _stored_rows(project)

    expected = updated("whole")
    records = len(changed["annotations"])
    assert f"{records} of {records} PNGs unchanged" in " ".join(expected[0])
    read_in_windows(monkeypatch)
    assert updated("windowed") == expected


def test_a_windowed_import_with_a_label_map_writes_what_a_whole_file_import_writes(
    backend, edge_dataset, monkeypatch
):
    """A label map gathers a file's windows (panoptic ones with their masks cut) before it
    renames and drops categories: every task comes out as from whole files."""
    label_map = {"person": "human", "bicycle": None}

    def imported(name: str) -> dict[str, list[tuple[Any, ...]]]:
        project = backend.create(name)
        import_dataset(project, "coco", edge_dataset, label_map=label_map)
        return _stored_rows(project)

    expected = imported("whole")
    assert any("human" in row for row in expected["categories"])
    read_in_windows(monkeypatch)
    assert imported("windowed") == expected
