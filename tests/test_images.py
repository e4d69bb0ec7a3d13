"""Image files: found and hashed at import, stored once with --copy-images, written by export."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from helpers import DATA, row_count
from repo.exporting import export_dataset
from repo.importing import import_dataset
from repo.query import run_query

PANOPTIC = DATA / "panopticapi_sample" / "coco"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_images_are_found_and_hashed(backend):
    project = backend.create()
    result = import_dataset(project, "coco", PANOPTIC, name="coco")
    assert result.missing_images == 0
    rows = run_query(project, "SELECT file_name, image_path, image_sha256 FROM items_v ORDER BY file_name").rows
    assert rows == [
        (name, f"images/val2017/{name}", _sha256(PANOPTIC / "images" / "val2017" / name))
        for name in ("000000142238.jpg", "000000439180.jpg")
    ]


def test_missing_images_are_allowed_and_counted(cli, backend, tmp_path):
    dataset = tmp_path / "coco"
    shutil.copytree(PANOPTIC, dataset)
    (dataset / "images" / "val2017" / "000000439180.jpg").unlink()
    args = backend.create_args()
    cli("create", *args)
    result = cli("import", "-p", args[1], "-f", "coco", dataset)
    assert result.stderr == "note: 1 image files were not found (see `dsrepo info`)\n"
    info = cli.text("info", "-p", args[1])
    assert "images: 2, image files not found: 1" in info


def test_copied_images_survive_their_folder_and_are_stored_once(backend, tmp_path):
    dataset = tmp_path / "coco"
    shutil.copytree(PANOPTIC, dataset)
    project = backend.create()
    import_dataset(project, "coco", dataset, name="first", copy_images=True)
    import_dataset(project, "coco_instances", dataset, name="second", copy_images=True)
    assert row_count(project, "blobs") == 2  # the same two files, stored once
    originals = {p.name: p.read_bytes() for p in (dataset / "images" / "val2017").iterdir()}
    shutil.rmtree(dataset)
    out = tmp_path / "out"
    result = export_dataset(project, "coco", out, save_images=True, reindex=True)
    assert result.saved_images == 2 and not result.unavailable_images
    assert {p.name: p.read_bytes() for p in (out / "images" / "val2017").iterdir()} == originals


def test_save_images_reads_the_source_folder(backend, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", DATA / "datumaro_coco" / "coco", name="sample")
    out = tmp_path / "out"
    result = export_dataset(project, "coco", out, save_images=True)
    assert result.saved_images == 2
    for subset, name in (("train", "a.jpg"), ("val", "b.jpg")):
        original = DATA / "datumaro_coco" / "coco" / "images" / subset / name
        assert (out / "images" / subset / name).read_bytes() == original.read_bytes()


def test_an_image_neither_stored_nor_on_disk_is_reported(cli, backend, tmp_path):
    dataset = tmp_path / "coco"
    shutil.copytree(DATA / "datumaro_coco" / "coco_instances", dataset)
    args = backend.create_args()
    cli("create", *args)
    cli("import", "-p", args[1], "-f", "coco", dataset)
    (dataset / "images" / "val" / "b.jpg").unlink()
    result = cli("export", "-p", args[1], "-f", "coco", "-o", tmp_path / "out", "--save-images")
    assert "saved 1 images" in result.stdout
    assert result.stderr == "note: 1 images are neither in the database nor on disk: val/b.jpg\n"
