"""The command line: every command works through click, user mistakes give one clear line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import DATA, Backend
from helpers import database_contents
from repo.cli import main
from repo.project import Project
from repo.store.migrate import latest_schema_revision

INSTANCES = DATA / "datumaro_coco" / "coco_instances"


def invoke(runner, *args: str, code: int = 0):
    result = runner.invoke(main, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return result


@pytest.fixture
def project_dir(runner, backend) -> Path:
    args = backend.create_args()
    invoke(runner, "create", *args)
    return Path(args[1])


def test_create_makes_sqlite_file_by_default(runner, tmp_path):
    result = invoke(runner, "create", "-p", str(tmp_path / "p"))
    assert (tmp_path / "p" / "project.db").is_file()
    assert not (tmp_path / "p" / "dsrepo.json").exists()
    assert result.output == f"created project {tmp_path / 'p'} on sqlite:///{(tmp_path / 'p' / 'project.db').resolve()}\n"


def test_create_remembers_a_database_url(runner, backend):
    args = backend.create_args()
    invoke(runner, "create", *args)
    if backend.name == "postgresql":
        remembered = json.loads((Path(args[1]) / "dsrepo.json").read_text())["db"]
        assert remembered == args[3]
    result = invoke(runner, "info", "-p", args[1])
    assert f"schema: {latest_schema_revision()}\n" in result.output


def test_create_refuses_an_existing_project(runner, project_dir):
    result = invoke(runner, "create", "-p", str(project_dir), code=1)
    assert result.stderr == f"Error: {project_dir} is already a dsrepo project\n"


def test_create_refuses_a_database_with_tables(runner, pg_admin_url, tmp_path):
    backend = Backend("postgresql", tmp_path, pg_admin_url)
    try:
        url = backend.new_url()
        invoke(runner, "create", "-p", str(tmp_path / "a"), "--db", url)
        result = invoke(runner, "create", "-p", str(tmp_path / "b"), "--db", url, code=1)
        assert "already holds tables" in result.stderr and "`create` needs an empty database" in result.stderr
    finally:
        backend.drop_all()


def test_db_url_precedence_env_over_remembered(runner, monkeypatch, tmp_path):
    invoke(runner, "create", "-p", str(tmp_path / "env"), "--db", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    monkeypatch.setenv("DSREPO_DB", f"sqlite:///{tmp_path / 'missing.db'}")
    result = invoke(runner, "info", "-p", str(tmp_path / "env"), code=1)
    assert result.stderr == f"Error: sqlite:///{tmp_path / 'missing.db'}: no such database; create it with `dsrepo create --db URL`\n"
    result = invoke(runner, "info", "-p", str(tmp_path / "env"), "--db", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert f"database: sqlite:///{tmp_path / 'elsewhere.db'}" in result.output


def test_password_is_masked(runner, tmp_path):
    result = invoke(runner, "info", "-p", str(tmp_path), "--db", "postgresql://me:secret@127.0.0.1:1/x", code=1)
    assert "secret" not in result.stderr
    assert "postgresql+psycopg://me:***@127.0.0.1:1/x" in result.stderr


def test_open_a_folder_that_is_not_a_project(runner, tmp_path):
    result = invoke(runner, "info", "-p", str(tmp_path), code=1)
    assert result.stderr == (
        f"Error: {tmp_path} is not a dsrepo project (no project.db); create one with "
        f"`dsrepo create -p {tmp_path}` or name a database with --db\n"
    )


def test_import_export_info(runner, project_dir, tmp_path):
    result = invoke(runner, "import", "-p", str(project_dir), "-f", "coco_instances", "-n", "vendor", str(INSTANCES))
    assert result.output == "imported source 'vendor': 2 files, 2 images, 3 annotations\n"
    info = invoke(runner, "info", "-p", str(project_dir)).output
    assert "  vendor (format coco_instances, from " in info
    assert "images: 2, image files not found: 0" in info
    assert "instances         val                 1 images         2 annotations  (instances_val.json)" in info
    out = tmp_path / "out"
    result = invoke(runner, "export", "-p", str(project_dir), "-f", "coco_instances", "-o", str(out))
    assert result.output == f"exported 2 files, 2 images, 3 annotations to {out}\n"


def test_format_options_are_accepted_after_double_dash(runner, project_dir, tmp_path):
    invoke(runner, "import", "-p", str(project_dir), "-f", "coco_instances", str(INSTANCES), "--", "--copy-images")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("x")
    result = invoke(runner, "export", "-p", str(project_dir), "-f", "coco", "-o", str(out), code=1)
    assert result.stderr == f"Error: {out} is not empty; choose an empty folder or pass --overwrite\n"
    invoke(runner, "export", "-p", str(project_dir), "-f", "coco", "-o", str(out), "--", "--overwrite")
    assert (out / "annotations" / "instances_val.json").is_file()


def test_unknown_option_is_a_usage_error(runner, project_dir, tmp_path):
    result = invoke(runner, "export", "-p", str(project_dir), "-f", "coco", "-o", str(tmp_path / "o"), "--", "--bogus", code=2)
    assert "Error: No such option '--bogus'." in result.stderr


def test_unknown_format_is_a_usage_error(runner, project_dir):
    result = invoke(runner, "import", "-p", str(project_dir), "-f", "voc", str(INSTANCES), code=2)
    assert "Invalid value for '-f' / '--format'" in result.stderr


def test_duplicate_source_name_is_refused_and_changes_nothing(runner, backend, project_dir):
    invoke(runner, "import", "-p", str(project_dir), "-f", "coco_instances", "-n", "a", str(INSTANCES))
    project = Project.open(project_dir)
    before = database_contents(project)
    result = invoke(runner, "import", "-p", str(project_dir), "-f", "coco_instances", "-n", "a", str(INSTANCES), code=1)
    assert result.stderr == (
        "Error: a source named 'a' already exists; choose another name with -n, "
        "or update it with `dsrepo update a PATH`\n"
    )
    assert database_contents(project) == before


def test_auto_names_do_not_clash(runner, project_dir):
    first = invoke(runner, "import", "-p", str(project_dir), "-f", "coco_instances", str(INSTANCES)).output
    second = invoke(runner, "import", "-p", str(project_dir), "-f", "coco_instances", str(INSTANCES)).output
    assert first.startswith("imported source 'coco_instances':")
    assert second.startswith("imported source 'coco_instances-2':")


def test_a_bad_file_fails_the_whole_import(runner, backend, project_dir, tmp_path):
    dataset = tmp_path / "bad"
    (dataset / "annotations").mkdir(parents=True)
    good = (INSTANCES / "annotations" / "instances_train.json").read_text()
    (dataset / "annotations" / "instances_a.json").write_text(good)
    broken = json.loads(good)
    broken["annotations"][0]["bbox"] = [1, 2, 3]
    (dataset / "annotations" / "instances_b.json").write_text(json.dumps(broken))
    project = Project.open(project_dir)
    before = database_contents(project)
    result = invoke(runner, "import", "-p", str(project_dir), "-f", "coco", str(dataset), code=1)
    shown = os.path.join(str(dataset), "annotations", "instances_b.json")
    assert result.stderr == (
        f"Error: {shown}: annotation id 1: field 'bbox': expected 4 numbers [x, y, width, height], "
        "got a list of 3 values\n"
    )
    assert database_contents(project) == before


def test_missing_path(runner, project_dir, tmp_path):
    result = invoke(runner, "import", "-p", str(project_dir), "-f", "coco", str(tmp_path / "nope"), code=1)
    assert result.stderr == f"Error: {tmp_path / 'nope'}: no such file or folder\n"


def test_folder_without_annotation_files(runner, project_dir, tmp_path):
    result = invoke(runner, "import", "-p", str(project_dir), "-f", "coco_instances", str(tmp_path), code=1)
    assert result.stderr == (
        f"Error: {tmp_path}: no coco_instances annotation files found "
        "(looked for annotations/instances_<subset>.json)\n"
    )


def test_convert_uses_a_temporary_project(runner, tmp_path):
    out = tmp_path / "out"
    result = invoke(runner, "convert", "-if", "coco", "-i", str(DATA / "datumaro_coco" / "coco"), "-f", "coco_captions", "-o", str(out))
    assert result.output == f"converted 2 images, 3 annotations into {out}\n"
    assert sorted(p.name for p in (out / "annotations").iterdir()) == ["captions_train.json", "captions_val.json"]


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_with_an_example(runner, command):
    result = invoke(runner, command, "--help")
    assert "Example:" in result.output
