"""What a command loads before and while it works. Every `dsrepo` command is a fresh process
that pays for each module it imports (SQLAlchemy alone takes 0.2 s), so the modules a command
does not use stay unloaded: Alembic until a migration runs, SQLAlchemy's PostgreSQL dialect in
SQLite projects, the image libraries in an export that writes no picture. Each test runs the
commands in a fresh interpreter and reads its `sys.modules` afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import DATA

COCO = DATA / "datumaro_coco" / "coco"
INSTANCES = DATA / "datumaro_coco" / "coco_instances"


def _after(commands: list[list[str]], expression: str, env: dict[str, str] | None = None) -> Any:
    """`expression`'s value (JSON) once `commands` ran, one after the other, in one interpreter."""
    program = "import json, os, sys\nfrom repo.cli import main\n" + "".join(
        f"main({command!r}, standalone_mode=False)\n" for command in commands
    ) + f"print(json.dumps({expression}))\n"
    done = subprocess.run([sys.executable, "-c", program], check=True, capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env})
    return json.loads(done.stdout.splitlines()[-1])


def _loaded_by(*commands: list[str]) -> set[str]:
    """The modules loaded once `commands` ran."""
    return set(_after(list(commands), "sorted(sys.modules)"))


def _dsrepo(*args: object) -> None:
    subprocess.run([sys.executable, "-m", "repo.cli", *map(str, args), "-q"], check=True, capture_output=True)


def test_create_loads_neither_alembic_nor_the_postgresql_dialect(tmp_path):
    loaded = _loaded_by(["create", "-p", str(tmp_path / "p"), "-q"])
    assert "repo.store.schema" in loaded
    assert not {"alembic", "sqlalchemy.dialects.postgresql"} & loaded


def test_a_sqlite_project_never_loads_the_postgresql_dialect(tmp_path):
    """Every task, images stored in the database (blobs, labels: both insert skipping conflicts)."""
    project = str(tmp_path / "p")
    loaded = _loaded_by(
        ["create", "-p", project, "-q"],
        ["import", "-p", project, "-f", "coco", "-n", "all", str(COCO), "-q", "--", "--copy-images"],
        ["export", "-p", project, "-f", "coco", "-o", str(tmp_path / "out"), "-q", "--", "--save-images"],
        ["query", "-p", project, "SELECT label, count(*) FROM annotations_v GROUP BY label"],
    )
    assert (tmp_path / "out" / "annotations" / "panoptic_val.json").is_file()
    assert "sqlalchemy.dialects.sqlite" in loaded and "sqlalchemy.dialects.postgresql" not in loaded


def test_an_instances_export_loads_no_image_library(tmp_path):
    project = tmp_path / "p"
    _dsrepo("create", "-p", project)
    _dsrepo("import", "-p", project, "-f", "coco_instances", INSTANCES)
    loaded = _loaded_by(["export", "-p", str(project), "-f", "coco", "-o", str(tmp_path / "out"), "-q"])
    assert (tmp_path / "out" / "annotations" / "instances_val.json").is_file()
    assert "repo.formats.coco_derive" in loaded
    assert not {"PIL", "isal", "cv2", "repo.coco.panoptic"} & loaded


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts the process's threads in /proc")
def test_numpy_starts_no_blas_threads_unless_asked(tmp_path):
    """OpenBLAS would start a spinning thread per core; the user's own setting still wins."""
    project = tmp_path / "p"
    _dsrepo("create", "-p", project)
    _dsrepo("import", "-p", project, "-f", "coco_instances", INSTANCES)
    export = ["export", "-p", str(project), "-f", "coco", "-o", str(tmp_path / "out"), "-q"]
    threads = "['numpy' in sys.modules, len(os.listdir('/proc/self/task'))]"
    assert _after([export], threads) == [True, 1]
    assert _after([[*export, "--overwrite"]], "os.environ['OPENBLAS_NUM_THREADS']", {"OPENBLAS_NUM_THREADS": "2"}) == "2"
