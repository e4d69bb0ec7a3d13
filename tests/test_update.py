"""Updating a source from a newer copy of its files stores only what changed."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text

from gen_coco import generate
from helpers import assert_same_file, database_contents, id_map, load_json, row_count
from repo.errors import NotFoundError
from repo.exporting import export_dataset
from repo.formats import coco as coco_format
from repo.history import checkout, commit, status
from repo.importing import import_dataset
from repo.labels import rename_label
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
    after = database_contents(project)
    for contents in (before, after):  # a cache outside versions: the update may remember digests it took
        contents.pop("file_digests")
    assert after == before
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
    # The old version stays as history; the file's row gets a new version with the new digest.
    assert after == {**before, "annotations": before["annotations"] + 1, "files": before["files"] + 1}
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


def _committed_with_a_two_segment_png(backend, dataset, copy_of):
    """A committed import of `dataset`; the copy's panoptic JSON, a record with two segments or
    more, its PNG's path and id map (to be changed by the test)."""
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    commit(project, "imported")
    panoptic = load_json(copy_of / "annotations" / "panoptic_val2017.json")
    record = next(r for r in panoptic["annotations"] if len(r["segments_info"]) >= 2)
    png_path = copy_of / "annotations" / "panoptic_val2017" / record["file_name"]
    return project, panoptic, record, png_path, id_map(png_path)


def test_a_changed_png_is_a_changed_segment(backend, dataset, copy_of, tmp_path):
    project, panoptic, record, png_path, ids = _committed_with_a_two_segment_png(backend, dataset, copy_of)
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


# -- what an update leaves unread ---------------------------------------------------------------

ANNOTATIONS = ("instances_val2017.json", "captions_val2017.json", "panoptic_val2017.json")


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The names of the annotation files the COCO reader parses (the real reader, watched)."""
    seen: list[str] = []
    real = coco_format.read_task_file

    def watched(path, *args, **kwargs):
        seen.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(coco_format, "read_task_file", watched)
    return seen


def _assert_same_as_a_fresh_import(backend, project, folder: Path, tmp_path: Path) -> None:
    """Exports of the updated project and of a new import of `folder` are equal: every JSON
    value, every PNG pixel (Pillow)."""
    fresh = backend.create("fresh")
    import_dataset(fresh, "coco", folder, name="src")
    updated, new = tmp_path / "export-updated", tmp_path / "export-fresh"
    export_dataset(project, "coco", updated)
    export_dataset(fresh, "coco", new)
    for name in ANNOTATIONS:
        assert_same_file(new / "annotations" / name, updated / "annotations" / name)
        assert_same_file(folder / "annotations" / name, updated / "annotations" / name)
    pngs = sorted((folder / "annotations" / "panoptic_val2017").glob("*.png"))
    for png in pngs:
        written = updated / "annotations" / "panoptic_val2017" / png.name
        np.testing.assert_array_equal(id_map(png), id_map(written))


def test_unchanged_files_are_not_read_again(backend, dataset, copy_of, tmp_path, reads):
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    commit(project, "imported")
    _edit(copy_of, "instances_val2017.json", lambda d: d["annotations"][3].update(bbox=[1, 2, 3, 4]))
    reads.clear()
    result = update_source(project, "src", copy_of)
    assert reads == ["instances_val2017.json"]
    assert result.notes == [
        f"{copy_of}/annotations/captions_val2017.json: unchanged, skipped",
        f"{copy_of}/annotations/panoptic_val2017.json: unchanged, skipped",
    ]
    assert result.changes.changed == {"annotations": 1} and not result.changes.added and not result.changes.removed
    _assert_same_as_a_fresh_import(backend, project, copy_of, tmp_path)
    reads.clear()
    again = update_source(project, "src", copy_of)  # the changed file is now the one last read
    assert reads == [] and again.changes.empty


def test_the_cli_says_what_it_skipped(backend, dataset, copy_of, cli):
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    _edit(copy_of, "captions_val2017.json", lambda d: d["annotations"][0].update(caption="a changed caption"))
    output = cli.text("update", "-p", project.directory, "src", copy_of)
    assert output.splitlines() == [
        f"{copy_of}/annotations/instances_val2017.json: unchanged, skipped",
        f"{copy_of}/annotations/panoptic_val2017.json: unchanged, skipped",
        "updated source 'src': changed 1 annotations",
    ]


def test_a_changed_panoptic_json_does_not_decode_unchanged_pngs(backend, dataset, copy_of, tmp_path):
    """Segment ids and categories come from the JSON, masks from the kept PNG: reordered
    segments and a changed category must come out as a fresh import gives them."""
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    commit(project, "imported")

    def change(document: dict[str, Any]) -> None:
        records = [r for r in document["annotations"] if len(r["segments_info"]) >= 2]
        records[0]["segments_info"].reverse()
        records[1]["segments_info"][0]["category_id"] = records[1]["segments_info"][1]["category_id"]

    _edit(copy_of, "panoptic_val2017.json", change)
    result = update_source(project, "src", copy_of)
    assert f"{copy_of}/annotations/panoptic_val2017.json: 40 of 40 PNGs unchanged, not decoded" in result.notes
    assert set(result.changes.changed) == {"annotations", "panoptic_records"}
    assert not result.changes.added and not result.changes.removed
    _assert_same_as_a_fresh_import(backend, project, copy_of, tmp_path)


def test_a_changed_png_is_decoded_again(backend, dataset, copy_of, tmp_path):
    project, panoptic, record, png_path, ids = _committed_with_a_two_segment_png(backend, dataset, copy_of)
    dropped = record["segments_info"].pop()["id"]
    ids[ids == dropped] = 0
    Image.fromarray(np.stack([(ids >> s) & 255 for s in (0, 8, 16)], axis=-1).astype("uint8"), "RGB").save(png_path)
    (copy_of / "annotations" / "panoptic_val2017.json").write_text(json.dumps(panoptic))
    result = update_source(project, "src", copy_of)
    assert f"{copy_of}/annotations/panoptic_val2017.json: 39 of 40 PNGs unchanged, not decoded" in result.notes
    assert result.changes.removed == {"annotations": 1}
    _assert_same_as_a_fresh_import(backend, project, copy_of, tmp_path)


def test_a_file_is_read_again_when_another_changed_an_image_it_lists(backend, dataset, copy_of, tmp_path, reads):
    """instances (read first) changes an image's record that captions lists unchanged:
    captions must keep its own record of that image, so it is read again."""
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    commit(project, "imported")
    captioned = {image["id"] for image in load_json(dataset / "annotations" / "captions_val2017.json")["images"]}
    _edit(copy_of, "instances_val2017.json",
          lambda d: next(i for i in d["images"] if i["id"] in captioned).update(date_captured="2001-01-01"))
    reads.clear()
    update_source(project, "src", copy_of)
    assert "captions_val2017.json" in reads
    _assert_same_as_a_fresh_import(backend, project, copy_of, tmp_path)


def test_after_a_checkout_the_files_are_read_again(backend, dataset, copy_of, tmp_path, reads):
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    first = commit(project, "imported")
    _edit(copy_of, "instances_val2017.json", lambda d: d["annotations"][3].update(bbox=[1, 2, 3, 4]))
    update_source(project, "src", copy_of)
    commit(project, "moved a box")
    checkout(project, first.hash)
    reads.clear()
    update_source(project, "src", copy_of)
    assert "instances_val2017.json" in reads
    _assert_same_as_a_fresh_import(backend, project, copy_of, tmp_path)


def _working_items(project) -> list[tuple[Any, ...]]:
    with project.engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT subset, file_name, coco_id, width, height, extra FROM items WHERE rev_to IS NULL"
        )).all()
    return sorted((tuple(row) for row in rows), key=repr)


def test_a_file_that_now_lists_an_image_first_is_read_again(backend, dataset, tmp_path, reads):
    """captions has its own record of an image that instances (read first) no longer lists:
    the item must become captions' record, as a fresh import makes it."""
    base, newer = tmp_path / "base", tmp_path / "newer"
    shutil.copytree(dataset, base)
    image_id = load_json(base / "annotations" / "captions_val2017.json")["images"][0]["id"]
    _edit(base, "captions_val2017.json",
          lambda d: next(i for i in d["images"] if i["id"] == image_id).update(flickr_url="http://x/1.jpg"))
    project = backend.create()
    import_dataset(project, "coco", base, name="src")
    commit(project, "imported")
    shutil.copytree(base, newer)

    def drop(document: dict[str, Any]) -> None:
        document["images"] = [i for i in document["images"] if i["id"] != image_id]
        document["annotations"] = [a for a in document["annotations"] if a["image_id"] != image_id]

    _edit(newer, "instances_val2017.json", drop)
    reads.clear()
    update_source(project, "src", newer)
    assert "captions_val2017.json" in reads
    fresh = backend.create("fresh")
    import_dataset(fresh, "coco", newer, name="src")
    assert _working_items(project) == _working_items(fresh)


@pytest.mark.parametrize("committed", [True, False])
def test_a_file_whose_rows_changed_since_it_was_read_is_read_again(backend, dataset, tmp_path, reads, committed):
    """A label renamed after the import (committed or not): the files naming it are read
    again, as before there were digests, and the update brings back what they say."""
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    if committed:
        commit(project, "imported")
    name = load_json(dataset / "annotations" / "instances_val2017.json")["categories"][0]["name"]
    rename_label(project, name, "renamed")
    reads.clear()
    result = update_source(project, "src", dataset)
    assert "instances_val2017.json" in reads and "captions_val2017.json" not in reads
    assert f"{dataset}/annotations/captions_val2017.json: unchanged, skipped" in result.notes
    _assert_same_as_a_fresh_import(backend, project, dataset, tmp_path)


def test_changed_moved_added_and_removed_records_in_one_file(backend, dataset, copy_of, tmp_path):
    """Matching builds rows only for the records it writes: every kind of change at once,
    in instances and in panoptic, gives what a fresh import of the folder gives."""
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    commit(project, "imported")

    def instances(document: dict[str, Any]) -> None:
        annotations = document["annotations"]
        other_image = next(a["image_id"] for a in annotations if a["image_id"] != annotations[0]["image_id"])
        annotations[0].update(image_id=other_image)  # moved to another image
        annotations[1].update(category_id=document["categories"][-1]["id"], iscrowd=0)
        annotations[2]["bbox"][0] += 0.25
        added = copy.deepcopy(annotations[3])
        added["id"] = 888_888
        annotations.append(added)
        del annotations[4]

    def panoptic(document: dict[str, Any]) -> None:
        record = next(r for r in document["annotations"] if len(r["segments_info"]) >= 2)
        record["segments_info"][0]["iscrowd"] = 1 - record["segments_info"][0].get("iscrowd", 0)

    _edit(copy_of, "instances_val2017.json", instances)
    _edit(copy_of, "panoptic_val2017.json", panoptic)
    result = update_source(project, "src", copy_of)
    assert result.changes.added == {"annotations": 1}
    assert result.changes.removed == {"annotations": 1}
    assert result.changes.changed == {"annotations": 4, "panoptic_records": 1}
    _assert_same_as_a_fresh_import(backend, project, copy_of, tmp_path)


def _annotation_statistics(project) -> float:
    """The number of rows of `annotations` the planner believes in (SQLite: sqlite_stat1,
    written by ANALYZE, for an index over every row; PostgreSQL: pg_class.reltuples)."""
    with project.engine.connect() as connection:
        if project.engine.dialect.name == "postgresql":
            return connection.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'annotations'")).scalar_one()
        query = text("SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_annotations_lineage'")
        return float(connection.execute(query).scalar_one().split()[0])


def test_statistics_are_refreshed_only_after_updates_that_wrote_much(backend, dataset, copy_of):
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    commit(project, "imported")  # a change now adds a row version
    imported = row_count(project, "annotations")
    assert _annotation_statistics(project) == imported
    _edit(copy_of, "instances_val2017.json", lambda d: d["annotations"][0]["bbox"].__setitem__(0, 0.5))
    assert update_source(project, "src", copy_of).changes.changed == {"annotations": 1}
    assert row_count(project, "annotations") == imported + 1
    assert _annotation_statistics(project) == imported  # one row in thousands: left as it was

    def many(document: dict[str, Any]) -> None:
        for index, annotation in enumerate(copy.deepcopy(document["annotations"])):
            document["annotations"].append({**annotation, "id": 1_000_000 + index})

    _edit(copy_of, "instances_val2017.json", many)
    result = update_source(project, "src", copy_of)
    assert result.changes.added["annotations"] * 10 >= result.images + result.annotations
    assert _annotation_statistics(project) == row_count(project, "annotations")


def _item_images(project) -> dict[str, tuple[Any, ...]]:
    with project.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT file_name, image_size, image_sha256 FROM items WHERE rev_to IS NULL")
        ).all()
    return {row[0]: (row[1], row[2]) for row in rows}


def test_an_image_that_changed_size_makes_the_files_listing_it_be_read_again(backend, tmp_path, reads):
    """Every annotation file is unchanged, but one image file grew: the files listing it are
    read again (each image is looked at once), and its item holds the new file's digest."""
    folder = tmp_path / "with-images"
    generate(folder, images=6, seed=3, tasks=["instances", "captions"], write_images=True)
    project = backend.create()
    import_dataset(project, "coco", folder, name="src")
    commit(project, "imported")
    image = sorted((folder / "images" / "val2017").iterdir())[0]
    image.write_bytes(image.read_bytes() + b"\0" * 10)
    reads.clear()
    result = update_source(project, "src", folder)
    assert sorted(reads) == ["captions_val2017.json", "instances_val2017.json"]
    assert result.changes.changed == {"items": 1}
    assert _item_images(project)[image.name] == (image.stat().st_size, hashlib.sha256(image.read_bytes()).hexdigest())
    reads.clear()
    assert update_source(project, "src", folder).changes.empty and reads == []


def test_an_update_of_instances_starts_without_alembic_opencv_or_pillow(dataset, copy_of, tmp_path):
    """`update` runs in a fresh interpreter on a changed instances file (and the panoptic file
    unchanged): afterwards none of these modules were loaded."""
    project = tmp_path / "p"
    subprocess.run([sys.executable, "-m", "repo.cli", "create", "-p", str(project), "-q"], check=True)
    subprocess.run([sys.executable, "-m", "repo.cli", "import", "-p", str(project), "-f", "coco", "-n", "src",
                    str(dataset), "-q"], check=True)
    _edit(copy_of, "instances_val2017.json", lambda d: d["annotations"][0]["bbox"].__setitem__(0, 0.5))
    program = (
        "import json, sys\n"
        "from repo.cli import main\n"
        f"main(['update', '-p', {str(project)!r}, 'src', {str(copy_of)!r}, '-q'], standalone_mode=False)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], check=True, capture_output=True, text=True)
    loaded = {name.split(".")[0] for name in json.loads(done.stdout.splitlines()[-1])}
    assert "repo" in loaded and not loaded & {"alembic", "PIL", "cv2", "imagecodecs", "isal", "matplotlib"}
