"""Panoptic export writes the imported PNG bytes where the segments did not change, and paints
again only the images whose segments did (a removed segment, `--where`), or every image when
asked (`--regenerate-png`, DSREPO_REGENERATE_PNG=1). Pixels are checked with Pillow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from PIL import Image

from gen_coco import generate
from helpers import assert_one_line_error, id_map, invoke, load_json
from repo.exporting import export_dataset
from repo.history import commit, status
from repo.importing import import_dataset
from repo.labels import delete_label, rename_label
from repo.project import Project
from repo.sources import update_source
from repo.store import migrate

PNG_FOLDER = Path("annotations") / "panoptic_val2017"
LONELY = "lonely"  # a label given to exactly one segment


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated panoptic data where one segment, of a record with several, has a label of its own."""
    root = tmp_path_factory.mktemp("pngkeep")
    generate(root, images=12, seed=7, tasks=["panoptic"])
    path = root / "annotations" / "panoptic_val2017.json"
    document = load_json(path)
    category = dict(document["categories"][0], id=999, name=LONELY)
    document["categories"].append(category)
    record = next(r for r in document["annotations"] if len(r["segments_info"]) >= 3)
    record["segments_info"][1]["category_id"] = 999
    path.write_text(json.dumps(document))
    return root


def _lonely(dataset: Path) -> tuple[str, int]:
    """The PNG name and segment id of the segment labelled LONELY."""
    document = load_json(dataset / "annotations" / "panoptic_val2017.json")
    for record in document["annotations"]:
        for segment in record["segments_info"]:
            if segment["category_id"] == 999:
                return record["file_name"], segment["id"]
    raise AssertionError("no lonely segment")


def _pngs(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((folder / PNG_FOLDER).glob("*.png"))}


def _assert_same_pixels(dataset: Path, out: Path) -> None:
    for name in _pngs(dataset):
        np.testing.assert_array_equal(id_map(dataset / PNG_FOLDER / name), id_map(out / PNG_FOLDER / name))


def test_kept_pngs_are_the_imported_files(backend, dataset, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    export_dataset(project, "coco_panoptic", tmp_path / "out")
    assert _pngs(tmp_path / "out") == _pngs(dataset)


def test_a_removed_segment_paints_only_its_image_again(backend, dataset, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    assert delete_label(project, LONELY) == 1
    export_dataset(project, "coco_panoptic", tmp_path / "out")
    _assert_only_lonely_repainted(dataset, tmp_path / "out")


def test_a_where_export_paints_only_the_changed_image_again(backend, dataset, tmp_path, cli):
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    cli("export", "-p", project.directory, "-f", "coco_panoptic", "-o", tmp_path / "out", "--where", f"label <> '{LONELY}'")
    _assert_only_lonely_repainted(dataset, tmp_path / "out")


def _assert_only_lonely_repainted(dataset: Path, out: Path) -> None:
    name, segment_id = _lonely(dataset)
    expected = id_map(dataset / PNG_FOLDER / name)
    assert (expected == segment_id).any()
    expected[expected == segment_id] = 0
    np.testing.assert_array_equal(id_map(out / PNG_FOLDER / name), expected)
    written, imported = _pngs(out), _pngs(dataset)
    assert written[name] != imported[name]
    assert {n: b for n, b in written.items() if n != name} == {n: b for n, b in imported.items() if n != name}


def test_a_renamed_label_keeps_the_bytes(backend, dataset, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    rename_label(project, LONELY, "renamed")
    export_dataset(project, "coco_panoptic", tmp_path / "out")
    assert _pngs(tmp_path / "out") == _pngs(dataset)
    document = load_json(tmp_path / "out" / "annotations" / "panoptic_val2017.json")
    assert any(category["name"] == "renamed" for category in document["categories"])


@pytest.mark.parametrize("how", ["option", "variable"])
@pytest.mark.parametrize("fmt", ["coco", "coco_panoptic"])
def test_forced_regeneration_paints_every_png_with_the_same_pixels(backend, dataset, tmp_path, cli, monkeypatch, how, fmt):
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    out = tmp_path / "out"
    if how == "variable":
        monkeypatch.setenv("DSREPO_REGENERATE_PNG", "1")
        cli("export", "-p", project.directory, "-f", fmt, "-o", out)
    else:
        cli("export", "-p", project.directory, "-f", fmt, "-o", out, "--", "--regenerate-png")
    written, imported = _pngs(out), _pngs(dataset)
    assert written.keys() == imported.keys()
    assert all(written[name] != imported[name] for name in imported)  # painted by dsrepo's encoder
    _assert_same_pixels(dataset, out)


def test_zero_keeps_the_pngs(dataset, tmp_path, monkeypatch):
    project = Project.create(tmp_path / "p")
    import_dataset(project, "coco", dataset, name="src")
    monkeypatch.setenv("DSREPO_REGENERATE_PNG", "0")
    export_dataset(project, "coco_panoptic", tmp_path / "out")
    assert _pngs(tmp_path / "out") == _pngs(dataset)


def test_the_option_belongs_to_the_png_formats_only(dataset, tmp_path):
    project = Project.create(tmp_path / "p")
    import_dataset(project, "coco", dataset, name="src")
    result = invoke("export", "-p", tmp_path / "p", "-f", "coco_instances", "-o", tmp_path / "o", "--regenerate-png", code=2)
    assert "--regenerate-png is not an option of format 'coco_instances'" in result.stderr


def test_a_bad_variable_value_is_a_config_error(dataset, tmp_path, monkeypatch):
    project = Project.create(tmp_path / "p")
    import_dataset(project, "coco", dataset, name="src")
    monkeypatch.setenv("DSREPO_REGENERATE_PNG", "yes")
    result = invoke("export", "-p", tmp_path / "p", "-f", "coco", "-o", tmp_path / "out", code=None)
    assert_one_line_error(result, "DSREPO_REGENERATE_PNG must be 1 (paint every panoptic PNG again) or 0 (write kept PNGs), got 'yes'")
    assert not (tmp_path / "out").exists()


def test_a_0005_project_upgrades_and_paints_until_an_update_keeps_the_pngs(backend, dataset, tmp_path, cli):
    """Projects imported before 0006 have no kept PNGs: exports paint them (same pixels); an
    update of the same files keeps them without reporting any change."""
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    with project.writing() as connection:  # back to 0005, which has no kept PNGs, and up again
        command.downgrade(migrate.alembic_config(connection), "0005")
        command.upgrade(migrate.alembic_config(connection), "head")
    commit(project, "imported under 0005")
    export_dataset(project, "coco_panoptic", tmp_path / "painted")
    painted, imported = _pngs(tmp_path / "painted"), _pngs(dataset)
    assert all(painted[name] != imported[name] for name in imported)
    _assert_same_pixels(dataset, tmp_path / "painted")
    result = update_source(project, "src", dataset)
    assert result.changes.empty and status(project) == []
    export_dataset(project, "coco_panoptic", tmp_path / "kept")
    assert _pngs(tmp_path / "kept") == imported


def test_a_changed_png_is_kept_after_an_update(backend, dataset, tmp_path):
    """An update that brings a repainted PNG keeps the new bytes: the next export writes them."""
    project = backend.create()
    import_dataset(project, "coco", dataset, name="src")
    newer = tmp_path / "newer"
    shutil.copytree(dataset, newer)
    name, segment_id = _lonely(dataset)
    document = load_json(newer / "annotations" / "panoptic_val2017.json")
    record = next(r for r in document["annotations"] if r["file_name"] == name)
    record["segments_info"] = [s for s in record["segments_info"] if s["id"] != segment_id]
    (newer / "annotations" / "panoptic_val2017.json").write_text(json.dumps(document))
    pixels = id_map(newer / PNG_FOLDER / name)
    pixels[pixels == segment_id] = 0
    rgb = np.stack([pixels & 255, (pixels >> 8) & 255, pixels >> 16], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(newer / PNG_FOLDER / name)
    update_source(project, "src", newer)
    export_dataset(project, "coco_panoptic", tmp_path / "out")
    assert _pngs(tmp_path / "out") == _pngs(newer)


@pytest.mark.parametrize("regenerate", [False, True])
def test_png_names_with_folders_are_written_in_those_folders(backend, dataset, tmp_path, monkeypatch, regenerate):
    """Most names are plain file names (written without resolving each path); a name with
    folders in it gets its folders made."""
    copy = tmp_path / "nested"
    shutil.copytree(dataset, copy)
    path = copy / "annotations" / "panoptic_val2017.json"
    document = load_json(path)
    moved = document["annotations"][0]["file_name"]
    (copy / PNG_FOLDER / "deep" / "er").mkdir(parents=True)
    (copy / PNG_FOLDER / moved).rename(copy / PNG_FOLDER / "deep" / "er" / moved)
    document["annotations"][0]["file_name"] = f"deep/er/{moved}"
    path.write_text(json.dumps(document))
    project = backend.create()
    import_dataset(project, "coco", copy, name="src")
    monkeypatch.setenv("DSREPO_REGENERATE_PNG", "1" if regenerate else "0")
    export_dataset(project, "coco_panoptic", tmp_path / "out")
    written = sorted(p.relative_to(tmp_path / "out" / PNG_FOLDER) for p in (tmp_path / "out" / PNG_FOLDER).rglob("*.png"))
    assert written == sorted(p.relative_to(copy / PNG_FOLDER) for p in (copy / PNG_FOLDER).rglob("*.png"))
    for name in written:
        np.testing.assert_array_equal(id_map(copy / PNG_FOLDER / name), id_map(tmp_path / "out" / PNG_FOLDER / name))
