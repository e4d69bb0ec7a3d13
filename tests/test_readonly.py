"""Read-only and damaged projects, and read-only output folders.

A project may live where it cannot be written: a folder shared read-only, a database file
without write permission, an archive mounted read-only. Reading commands (`info`, `query`,
`export`, `log`, `diff`, `stats`) must work there; commands that write must fail with one
line. A damaged database file must give one line naming it, not a traceback.

"Read-only" is made for real: `chattr +i` (immutable) when the tests run as root, whom file
modes do not stop, and `chmod a-w` otherwise.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import DATA
from helpers import assert_one_line_error, invoke
from helpers import assert_same_file, database_contents
from repo.history import commit
from repo.importing import import_dataset
from repo.project import Project

INSTANCES = DATA / "datumaro_coco" / "coco_instances"

READING = {
    "info": ["info"],
    "log": ["log"],
    "diff": ["diff", "HEAD"],
    "stats": ["stats", "--format", "json"],
    "query": ["query", "--format", "json", "SELECT label, count(*) AS n FROM annotations_v GROUP BY label ORDER BY label"],
}
WRITING = {
    "import": ["import", "-f", "coco", "-n", "second", str(INSTANCES)],
    "commit": ["commit", "-m", "again", "--allow-empty"],
    "labels rename": ["labels", "rename", "a", "z"],
    "tag": ["tag", "v2"],
}


@pytest.fixture
def freeze() -> Iterator[Callable[[Path], None]]:
    """Make a file or folder unwritable for this process, undone at the end of the test."""
    frozen: list[Path] = []

    def apply(path: Path) -> None:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "+i", str(path)], check=True)
        else:
            path.chmod(path.stat().st_mode & ~0o222)
        frozen.append(path)

    yield apply
    for path in reversed(frozen):
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(path.stat().st_mode | 0o200)


@pytest.fixture
def project(tmp_path) -> Project:
    """A SQLite project with one committed source; its connections closed (no -wal left)."""
    project = Project.create(tmp_path / "project")
    import_dataset(project, "coco", INSTANCES, name="base")
    commit(project, "base")
    project.close()
    return project


def _outputs(directory: Path, tmp_path: Path, name: str) -> dict[str, str]:
    outputs = {command: invoke(*args, "-p", directory).stdout for command, args in READING.items()}
    out = tmp_path / name
    invoke("export", "-p", directory, "-f", "coco", "-o", out, "-q", "--where", "label = 'b'")
    for file in ("instances_train.json", "instances_val.json"):
        outputs[file] = (out / "annotations" / file).read_text()
    return outputs


@pytest.mark.parametrize("what", ["folder", "file"])
def test_reading_commands_work_on_a_read_only_project(project, tmp_path, freeze, what):
    """With the project's folder (no -wal or -shm can be made) or its project.db read-only,
    info, log, diff, stats, query and export give what they give on the writable project;
    every writing command fails with one line, and the database is unchanged."""
    directory = project.directory
    expected = _outputs(directory, tmp_path, "expected")
    before = database_contents(Project.open(directory))
    freeze(directory if what == "folder" else directory / "project.db")
    assert _outputs(directory, tmp_path, "actual") == expected
    for command, args in WRITING.items():
        result = invoke(*args, "-p", directory, code=None)
        assert_one_line_error(result)
        assert "read-only" in result.stderr, (command, result.stderr)
    files_before = sorted(p.name for p in directory.iterdir())
    assert database_contents(Project.open(directory)) == before
    assert sorted(p.name for p in directory.iterdir()) == files_before


def test_a_read_only_folder_with_an_unmerged_wal_is_refused(project, tmp_path, freeze):
    """A write-ahead log holding committed data that was never merged into project.db (a
    crash, a copy taken while a command ran) cannot be read without making its index file
    beside it. In a read-only folder that is impossible, and reading project.db alone would
    show an older state: refused with one line naming the file."""
    database = project.directory / "project.db"
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA wal_autocheckpoint = 0")
    connection.execute("UPDATE labels SET name = 'renamed' WHERE name = 'a'")
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copyfile(database, copy / "project.db")
    shutil.copyfile(f"{database}-wal", copy / "project.db-wal")
    connection.close()
    freeze(copy)
    result = invoke("info", "-p", copy, code=None)
    assert_one_line_error(result)
    assert str((copy / "project.db").resolve()) in result.stderr and "-wal" in result.stderr


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
@pytest.mark.parametrize("command", ["info", "query", "export", "log", "import"])
def test_a_damaged_database_gives_one_line(project, tmp_path, damage, command):
    """A project.db that is not a database at all, or cut short: one line naming the file
    and suggesting SQLite's integrity check."""
    database = project.directory / "project.db"
    if damage == "garbage":
        database.write_bytes(os.urandom(16384))
    else:  # the first two pages: the schema's root page, without the pages it points to
        with database.open("r+b") as file:
            file.truncate(2 * 4096)
    args = {
        "info": ["info"], "log": ["log"], "import": ["import", "-f", "coco", "-n", "x", INSTANCES],
        "query": ["query", "SELECT count(*) FROM annotations_v"],
        "export": ["export", "-f", "coco", "-o", tmp_path / "out"],
    }[command]
    result = invoke(args[0], "-p", project.directory, *args[1:], code=None)
    assert_one_line_error(result)
    assert str(database.resolve()) in result.stderr and "PRAGMA integrity_check" in result.stderr


@pytest.mark.parametrize("where", ["folder", "parent"])
def test_export_to_a_read_only_folder_gives_one_line(backend, tmp_path, freeze, where):
    """An export into an empty folder that cannot be written, or to a new folder whose
    parent cannot be written: one line naming the folder, exit 1, nothing written."""
    project = backend.create()
    import_dataset(project, "coco", INSTANCES, name="base")
    parent = tmp_path / "shared"
    parent.mkdir()
    out = parent / "out"
    if where == "folder":
        out.mkdir()
        freeze(out)
    else:
        freeze(parent)
    result = invoke("export", "-p", project.directory, "-f", "coco", "-o", out, "--save-images", code=None)
    assert_one_line_error(result)
    assert str(out) in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_export_from_a_read_only_project_matches(project, tmp_path, freeze):
    """The files exported from a read-only project equal those of the writable one."""
    invoke("export", "-p", project.directory, "-f", "coco", "-o", tmp_path / "before", "-q", "--save-images")
    freeze(project.directory)
    invoke("export", "-p", project.directory, "-f", "coco", "-o", tmp_path / "after", "-q", "--save-images")
    for file in ("instances_train.json", "instances_val.json"):
        assert_same_file(tmp_path / "before" / "annotations" / file, tmp_path / "after" / "annotations" / file)
    assert (tmp_path / "after" / "images" / "val" / "b.jpg").read_bytes() == (INSTANCES / "images" / "val" / "b.jpg").read_bytes()


def test_export_into_a_writable_folder_whose_parent_is_read_only(backend, tmp_path, freeze):
    """-o can be written but the folder holding it cannot (no room for a new folder beside
    -o): the export is staged inside -o and its files replace -o's, none left over."""
    project = backend.create()
    import_dataset(project, "coco", DATA / "datumaro_coco" / "coco", name="all")
    parent = tmp_path / "shared"
    out = parent / "out"
    out.mkdir(parents=True)
    freeze(parent)
    invoke("export", "-p", project.directory, "-f", "coco", "-o", out, "-q", "--save-images")
    assert sorted(p.name for p in out.iterdir()) == ["annotations", "images"]
    invoke("export", "-p", project.directory, "-f", "coco_captions", "-o", out, "-q", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["annotations"]
    assert all(p.name.startswith("captions_") for p in (out / "annotations").iterdir())
