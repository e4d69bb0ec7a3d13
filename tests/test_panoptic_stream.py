"""A panoptic export streams its records and their segments from the store in file order,
also after updates that moved, added and removed records and segments, and merges the
records of one image from several sources. The oracle is the JSON and the PNGs the data came
from (json values compared, pixels decoded with Pillow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text

from gen_coco import generate
from helpers import assert_same_file, id_map, load_json
from repo.errors import ConflictError
from repo.exporting import export_dataset
from repo.history import commit
from repo.importing import import_dataset
from repo.sources import update_source

PANOPTIC = Path("annotations") / "panoptic_val2017.json"
PNG_FOLDER = Path("annotations") / "panoptic_val2017"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stream")
    generate(root, images=30, seed=11, tasks=["panoptic"])
    return root


def _copy(dataset: Path, target: Path) -> Path:
    shutil.copytree(dataset, target)
    return target


def _write(folder: Path, document: dict[str, Any]) -> None:
    (folder / PANOPTIC).write_text(json.dumps(document))


def _void(folder: Path, png_name: str, segment_ids: set[int]) -> None:
    """Paint the pixels of these segments void (id 0) in the folder's PNG."""
    ids = id_map(folder / PNG_FOLDER / png_name)
    ids[np.isin(ids, list(segment_ids))] = 0
    rgb = np.stack([ids & 0xFF, (ids >> 8) & 0xFF, (ids >> 16) & 0xFF], axis=-1).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(folder / PNG_FOLDER / png_name)


def _assert_exported_as(folder: Path, out: Path) -> None:
    assert_same_file(folder / PANOPTIC, out / PANOPTIC)
    for png in sorted((folder / PNG_FOLDER).glob("*.png")):
        np.testing.assert_array_equal(id_map(png), id_map(out / PNG_FOLDER / png.name))


def _multi_segment(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [record for record in document["annotations"] if len(record["segments_info"]) >= 3]


def test_records_and_segments_keep_their_order_through_updates(backend, dataset, tmp_path):
    """Records reversed, one moved to the front, one dropped; segments reversed in some
    records and one removed (its pixels made void): the export lists them as the new JSON
    does, after one update and after a second that reorders again."""
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    commit(project, "imported")
    newer = _copy(dataset, tmp_path / "newer")
    document = load_json(newer / PANOPTIC)
    records = document["annotations"]
    records.reverse()
    records.insert(0, records.pop(len(records) // 2))
    dropped = records.pop(5)
    document["images"] = [image for image in document["images"] if image["id"] != dropped["image_id"]]
    (newer / PNG_FOLDER / dropped["file_name"]).unlink()
    reversed_in, trimmed = _multi_segment(document)[:2], _multi_segment(document)[2]
    for record in reversed_in:
        record["segments_info"].reverse()
    removed = trimmed["segments_info"].pop(1)
    _void(newer, trimmed["file_name"], {removed["id"]})
    _write(newer, document)
    update_source(project, "src", newer)
    commit(project, "reordered")
    export_dataset(project, "coco_panoptic", tmp_path / "first")
    _assert_exported_as(newer, tmp_path / "first")

    records.sort(key=lambda record: record["image_id"] % 7)
    for record in _multi_segment(document)[3:6]:
        record["segments_info"].insert(0, record["segments_info"].pop())
    _write(newer, document)
    update_source(project, "src", newer)
    export_dataset(project, "coco_panoptic", tmp_path / "second")
    _assert_exported_as(newer, tmp_path / "second")


def test_records_of_one_image_from_two_sources_merge(backend, dataset, tmp_path):
    """Each source has the first or the last segments of every record (the others' pixels
    void): the union is the original file, segments in source order, every PNG painted again."""
    halves = [_copy(dataset, tmp_path / "first"), _copy(dataset, tmp_path / "last")]
    for index, folder in enumerate(halves):
        document = load_json(folder / PANOPTIC)
        for record in document["annotations"]:
            segments = record["segments_info"]
            cut = len(segments) // 2
            kept, dropped = (segments[:cut], segments[cut:]) if index == 0 else (segments[cut:], segments[:cut])
            record["segments_info"] = kept
            _void(folder, record["file_name"], {segment["id"] for segment in dropped})
        _write(folder, document)
    project = backend.create()
    import_dataset(project, "coco", halves[0], name="first")
    import_dataset(project, "coco", halves[1], name="last")
    export_dataset(project, "coco_panoptic", tmp_path / "out")
    _assert_exported_as(dataset, tmp_path / "out")


def test_a_segment_id_in_two_sources_of_one_image_is_refused(backend, dataset, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", dataset, name="a")
    import_dataset(project, "coco", dataset, name="b")
    first = load_json(dataset / PANOPTIC)["annotations"][0]
    with pytest.raises(ConflictError) as raised:
        export_dataset(project, "coco_panoptic", tmp_path / "out")
    assert str(raised.value) == (
        f"panoptic_val2017.json: image id {first['image_id']}: segment id {first['segments_info'][0]['id']} is in "
        "source a and in source b; panoptic segment ids are pixel values and are never reindexed"
    )


def test_segments_out_of_their_records_order_are_a_bug_not_a_wrong_file(backend, dataset, tmp_path):
    """The export reads records and segments as two streams in position order; a store whose
    segment positions do not follow their records' (no writer makes one) fails the export."""
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    with project.engine.begin() as connection:
        connection.execute(text("UPDATE annotations SET position = -position"))
    with pytest.raises(RuntimeError, match="out of their records' order"):
        export_dataset(project, "coco_panoptic", tmp_path / "out")
