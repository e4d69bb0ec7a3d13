"""The schema's migrations work from a built wheel and through Alembic's own command line."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from repo.project import Project
from repo.store.migrate import latest_schema_revision, schema_revision

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_migrations(tmp_path):
    """A non-editable install must find the Alembic scripts inside the package."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    [wheel] = tmp_path.glob("dsrepo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "repo/migrations/env.py" in names
    assert "repo/migrations/script.py.mako" in names
    versions = {name for name in names if name.startswith("repo/migrations/versions/") and name.endswith(".py")}
    assert any(name.startswith(f"repo/migrations/versions/{latest_schema_revision()}_") for name in versions)
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "repo").rglob("*.py")}
    assert modules <= set(names), sorted(modules - set(names))  # every package of the source tree
    assert "repo/web/templates/item.html" in names and "repo/web/static/style.css" in names  # dsrepo serve's pages


def test_alembic_command_line_upgrades_a_project_database(backend, tmp_path):
    url = backend.new_url() or f"sqlite:///{tmp_path / 'project.db'}"
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "-x", f"db={url}", "upgrade", "head"],
        check=True, capture_output=True, cwd=tmp_path,
    )
    project = Project.open(tmp_path / "folder", url)  # refuses a database without dsrepo's schema
    with project.reading() as connection:
        assert schema_revision(connection) == latest_schema_revision()
