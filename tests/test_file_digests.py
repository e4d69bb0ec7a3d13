"""Remembered file digests (repo.store.file_digests): a file is read again exactly when what
`stat` says of it changed, and what an update concludes is what reading every file would give."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from gen_coco import generate
from repo.coco import panoptic
from repo.errors import InputError
from repo.history import commit
from repo.importing import import_dataset
from repo.sources import update_source
from repo.store import file_digests
from repo.store.file_digests import FileDigests, file_sha256


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The files a test writes are a moment old; without the racy window (see the module) their
    digests are remembered at once, as those of files written seconds before would be."""
    monkeypatch.setattr(file_digests, "RACY_NS", 0)


@pytest.fixture
def file_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the image, PNG and annotation files read for their bytes (the real
    functions, watched)."""
    seen: list[str] = []

    def watch(module, name: str) -> None:
        real = getattr(module, name)

        def watched(path, *args, **kwargs):
            seen.append(Path(path).name)
            return real(path, *args, **kwargs)

        monkeypatch.setattr(module, name, watched)

    watch(file_digests, "read_real_file")
    watch(file_digests, "_read_sha256")
    watch(panoptic, "read_png")
    return seen


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "dataset"
    generate(root, images=6, seed=3, tasks=["instances", "captions", "panoptic"], write_images=True)
    return root


def _remembered(project) -> dict[str, str]:
    with project.engine.connect() as connection:
        return dict(connection.execute(text("SELECT path, sha256 FROM file_digests")).all())


def _item_images(project) -> dict[str, tuple[int, str]]:
    with project.engine.connect() as connection:
        rows = connection.execute(text("SELECT file_name, image_size, image_sha256 FROM items WHERE rev_to IS NULL"))
        return {row[0]: (row[1], row[2]) for row in rows}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_file_sha256_is_the_digest_of_the_bytes(tmp_path):
    """The oracle is hashlib over the whole file; a file of several read chunks, an empty
    one, a folder and a missing file (None: the reader then says why)."""
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (3 * file_digests.CHUNK // 256 + 7))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for path in (big, empty):
        assert file_sha256(path) == _sha256(path)
        assert file_sha256(str(path)) == _sha256(path)
    assert file_sha256(tmp_path) is None
    assert file_sha256(tmp_path / "missing.png") is None


def test_an_import_remembers_every_file_it_read(backend, folder, settled):
    project = backend.create()
    import_dataset(project, "coco", folder, name="src")
    read = [path for path in folder.rglob("*") if path.is_file()]
    assert _remembered(project) == {str(path): _sha256(path) for path in read}


def test_a_failed_import_remembers_nothing(backend, folder, settled):
    project = backend.create()
    import_dataset(project, "coco", folder, name="good")
    before = _remembered(project)
    instances = folder / "annotations" / "instances_val2017.json"
    document = json.loads(instances.read_text())
    document["annotations"][0]["bbox"] = [1, 2, 3]
    instances.write_text(json.dumps(document))
    (folder / "images" / "val2017" / "extra.jpg").write_bytes(b"not listed")
    with pytest.raises(InputError):
        import_dataset(project, "coco", folder, name="bad")
    assert _remembered(project) == before


def test_an_update_reads_only_what_changed(backend, folder, settled, file_reads):
    """One changed annotation file: only it is read; no image, no PNG, no other file."""
    project = backend.create()
    import_dataset(project, "coco", folder, name="src")
    commit(project, "imported")
    instances = folder / "annotations" / "instances_val2017.json"
    document = json.loads(instances.read_text())
    document["annotations"][0]["bbox"][0] += 1
    instances.write_text(json.dumps(document))
    file_reads.clear()
    result = update_source(project, "src", folder)
    assert file_reads == ["instances_val2017.json"]
    assert result.changes.changed == {"annotations": 1}
    assert _remembered(project)[str(instances)] == _sha256(instances)


def test_a_changed_panoptic_json_reads_no_unchanged_png(backend, folder, settled, file_reads):
    project = backend.create()
    import_dataset(project, "coco", folder, name="src")
    path = folder / "annotations" / "panoptic_val2017.json"
    document = json.loads(path.read_text())
    document["annotations"][0]["segments_info"].reverse()
    path.write_text(json.dumps(document))
    file_reads.clear()
    result = update_source(project, "src", folder)
    assert file_reads == ["panoptic_val2017.json"]
    assert f"{folder}/annotations/panoptic_val2017.json: 6 of 6 PNGs unchanged, not decoded" in result.notes


def test_a_touched_file_is_read_again_and_found_unchanged(backend, folder, settled, file_reads):
    project = backend.create()
    import_dataset(project, "coco", folder, name="src")
    image = sorted((folder / "images" / "val2017").iterdir())[0]
    later = image.stat().st_mtime_ns + 5_000_000_000
    os.utime(image, ns=(later, later))
    file_reads.clear()
    result = update_source(project, "src", folder)
    assert file_reads == [image.name]
    assert result.changes.empty


def test_an_image_replaced_by_one_of_the_same_size_is_noticed(backend, folder, settled, file_reads):
    """Same size, same modification time (set back), other bytes: the change time tells."""
    project = backend.create()
    import_dataset(project, "coco", folder, name="src")
    commit(project, "imported")
    image = sorted((folder / "images" / "val2017").iterdir())[0]
    status = image.stat()
    image.write_bytes(bytes(255 - byte for byte in image.read_bytes()))
    os.utime(image, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert image.stat().st_size == status.st_size
    result = update_source(project, "src", folder)
    assert result.changes.changed == {"items": 1}
    assert _item_images(project)[image.name] == (status.st_size, _sha256(image))


def test_a_file_is_known_only_with_the_stat_it_was_read_with(tmp_path, backend, settled):
    path = tmp_path / "a.bin"
    path.write_bytes(b"first")
    project = backend.create()
    with project.writing() as connection:
        digests = FileDigests(connection)
        digest = digests.file_sha256(str(path))
        assert digest == _sha256(path) and digests.known(str(path), path.stat()) == digest
        status = path.stat()
        path.write_bytes(b"other")  # same size; the modification time set back
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
        assert digests.known(str(path), path.stat()) is None
        assert digests.file_sha256(str(path)) == _sha256(path)
        replacement = tmp_path / "b.bin"
        replacement.write_bytes(b"third")
        os.utime(replacement, ns=(status.st_atime_ns, status.st_mtime_ns))
        replacement.rename(path)  # another inode in its place
        assert digests.known(str(path), path.stat()) is None


def test_a_file_changed_just_before_it_was_read_is_not_remembered(tmp_path, backend):
    """Within RACY_NS of its last change, another change could leave the same `stat`."""
    path = tmp_path / "fresh.bin"
    path.write_bytes(b"just written")
    project = backend.create()
    with project.writing() as connection:
        digests = FileDigests(connection)
        assert digests.file_sha256(str(path)) == _sha256(path)
        assert digests.known(str(path), path.stat()) is None
