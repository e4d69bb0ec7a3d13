"""The command line: every command works through click, user mistakes give one clear line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from helpers import DATA, Backend, database_contents
from repo.cli import main
from repo.project import Project
from repo.store.migrate import latest_schema_revision

INSTANCES = DATA / "datumaro_coco" / "coco_instances"


@pytest.fixture
def project_dir(cli, backend) -> Path:
    args = backend.create_args()
    cli("create", *args)
    return Path(args[1])


def test_create_makes_sqlite_file_by_default(cli, tmp_path):
    result = cli("create", "-p", str(tmp_path / "p"))
    assert (tmp_path / "p" / "project.db").is_file()
    assert not (tmp_path / "p" / "dsrepo.json").exists()
    assert result.output == f"created project {tmp_path / 'p'} on sqlite:///{(tmp_path / 'p' / 'project.db').resolve()}\n"


def test_create_remembers_a_database_url(cli, backend):
    args = backend.create_args()
    cli("create", *args)
    if backend.name == "postgresql":
        remembered = json.loads((Path(args[1]) / "dsrepo.json").read_text())["db"]
        assert remembered == args[3]
    result = cli("info", "-p", args[1])
    assert f"schema: {latest_schema_revision()}\n" in result.output


def test_create_refuses_an_existing_project(cli, project_dir):
    result = cli("create", "-p", str(project_dir), code=1)
    assert result.stderr == f"Error: {project_dir} is already a dsrepo project\n"


def test_create_refuses_a_database_with_tables(cli, pg_admin_url, tmp_path):
    """Tables of something else are listed; another dsrepo project is named."""
    backend = Backend("postgresql", tmp_path, pg_admin_url)
    try:
        url = backend.new_url()
        engine = create_engine(url, poolclass=NullPool)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE somebody_elses (x integer)"))
        engine.dispose()
        result = cli("create", "-p", str(tmp_path / "a"), "--db", url, code=1)
        assert "already holds tables (somebody_elses)" in result.stderr
        assert "`create` needs an empty database" in result.stderr
        url = backend.new_url()
        cli("create", "-p", str(tmp_path / "a"), "--db", url)
        result = cli("create", "-p", str(tmp_path / "b"), "--db", url, code=1)
        assert result.stderr == (
            f"Error: {make_url(url).render_as_string(hide_password=True)} already holds the dsrepo project 'a' "
            f"(folder {(tmp_path / 'a').resolve()}); `create` needs an empty database\n"
        )
    finally:
        backend.drop_all()


def test_a_missing_postgresql_database_gets_a_hint(cli, pg_admin_url, tmp_path):
    url = make_url(pg_admin_url).set(database="dsrepo_nowhere").render_as_string(hide_password=False)
    result = cli("create", "-p", tmp_path / "p", "--db", url, code=1)
    assert result.stderr == (
        f"Error: {url}: the server has no database 'dsrepo_nowhere'; create it with `createdb dsrepo_nowhere` "
        "(or the server's CREATE DATABASE \"dsrepo_nowhere\"), then run `dsrepo create`\n"
    )
    assert not (tmp_path / "p").exists()


def test_db_url_precedence_env_over_remembered(cli, monkeypatch, tmp_path):
    cli("create", "-p", str(tmp_path / "env"), "--db", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    monkeypatch.setenv("DSREPO_DB", f"sqlite:///{tmp_path / 'missing.db'}")
    result = cli("info", "-p", str(tmp_path / "env"), code=1)
    assert result.stderr == f"Error: sqlite:///{tmp_path / 'missing.db'}: no such database; create it with `dsrepo create --db URL`\n"
    result = cli("info", "-p", str(tmp_path / "env"), "--db", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert f"database: sqlite:///{tmp_path / 'elsewhere.db'}" in result.output


def test_password_is_masked(cli, tmp_path):
    result = cli("info", "-p", str(tmp_path), "--db", "postgresql://me:secret@127.0.0.1:1/x", code=1)
    assert "secret" not in result.stderr
    assert "postgresql+psycopg://me:***@127.0.0.1:1/x" in result.stderr


def test_open_a_folder_that_is_not_a_project(cli, tmp_path):
    result = cli("info", "-p", str(tmp_path), code=1)
    assert result.stderr == (
        f"Error: {tmp_path} is not a dsrepo project (no project.db); create one with "
        f"`dsrepo create -p {tmp_path}` or name a database with --db\n"
    )


def test_import_export_info(cli, project_dir, tmp_path):
    result = cli("import", "-p", str(project_dir), "-f", "coco_instances", "-n", "vendor", str(INSTANCES))
    assert result.output == "imported source 'vendor': 2 files, 2 images, 3 annotations\n"
    info = cli("info", "-p", str(project_dir)).output
    assert "  vendor (format coco_instances, from " in info
    assert "images: 2, image files not found: 0" in info
    assert "instances         val                 1 images         2 annotations  (instances_val.json)" in info
    out = tmp_path / "out"
    result = cli("export", "-p", str(project_dir), "-f", "coco_instances", "-o", str(out))
    assert result.output == f"exported 2 files, 2 images, 3 annotations to {out}\n"


def test_format_options_are_accepted_after_double_dash(cli, project_dir, tmp_path):
    cli("import", "-p", str(project_dir), "-f", "coco_instances", str(INSTANCES), "--", "--copy-images")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("x")
    result = cli("export", "-p", str(project_dir), "-f", "coco", "-o", str(out), code=1)
    assert result.stderr == f"Error: {out} is not empty; choose an empty folder or pass --overwrite\n"
    cli("export", "-p", str(project_dir), "-f", "coco", "-o", str(out), "--", "--overwrite")
    assert (out / "annotations" / "instances_val.json").is_file()


def test_unknown_option_is_a_usage_error(cli, project_dir, tmp_path):
    result = cli("export", "-p", str(project_dir), "-f", "coco", "-o", str(tmp_path / "o"), "--", "--bogus", code=2)
    assert "Error: No such option '--bogus'." in result.stderr


def test_unknown_format_is_a_usage_error(cli, project_dir):
    result = cli("import", "-p", str(project_dir), "-f", "voc", str(INSTANCES), code=2)
    assert "Invalid value for '-f' / '--format'" in result.stderr


def test_duplicate_source_name_is_refused_and_changes_nothing(cli, backend, project_dir):
    cli("import", "-p", str(project_dir), "-f", "coco_instances", "-n", "a", str(INSTANCES))
    project = Project.open(project_dir)
    before = database_contents(project)
    result = cli("import", "-p", str(project_dir), "-f", "coco_instances", "-n", "a", str(INSTANCES), code=1)
    assert result.stderr == (
        "Error: a source named 'a' already exists; choose another name with -n, "
        "or update it with `dsrepo update a PATH`\n"
    )
    assert database_contents(project) == before


def test_auto_names_do_not_clash(cli, project_dir):
    first = cli("import", "-p", str(project_dir), "-f", "coco_instances", str(INSTANCES)).output
    second = cli("import", "-p", str(project_dir), "-f", "coco_instances", str(INSTANCES)).output
    assert first.startswith("imported source 'coco_instances':")
    assert second.startswith("imported source 'coco_instances-2':")


def test_a_bad_file_fails_the_whole_import(cli, backend, project_dir, tmp_path):
    dataset = tmp_path / "bad"
    (dataset / "annotations").mkdir(parents=True)
    good = (INSTANCES / "annotations" / "instances_train.json").read_text()
    (dataset / "annotations" / "instances_a.json").write_text(good)
    broken = json.loads(good)
    broken["annotations"][0]["bbox"] = [1, 2, 3]
    (dataset / "annotations" / "instances_b.json").write_text(json.dumps(broken))
    project = Project.open(project_dir)
    before = database_contents(project)
    result = cli("import", "-p", str(project_dir), "-f", "coco", str(dataset), code=1)
    shown = os.path.join(str(dataset), "annotations", "instances_b.json")
    assert result.stderr == (
        f"Error: {shown}: annotation id 1: field 'bbox': expected 4 numbers [x, y, width, height], "
        "got a list of 3 values\n"
    )
    assert database_contents(project) == before


def test_missing_path(cli, project_dir, tmp_path):
    result = cli("import", "-p", str(project_dir), "-f", "coco", str(tmp_path / "nope"), code=1)
    assert result.stderr == f"Error: {tmp_path / 'nope'}: no such file or folder\n"


def test_folder_without_annotation_files(cli, project_dir, tmp_path):
    result = cli("import", "-p", str(project_dir), "-f", "coco_instances", str(tmp_path), code=1)
    assert result.stderr == (
        f"Error: {tmp_path}: no coco_instances annotation files found "
        "(looked for annotations/instances_<subset>.json, <subset>/_annotations.coco.json, "
        "or one .json file beside the images)\n"
    )


def test_convert_uses_a_temporary_project(cli, tmp_path):
    out = tmp_path / "out"
    result = cli("convert", "-if", "coco", "-i", str(DATA / "datumaro_coco" / "coco"), "-f", "coco_captions", "-o", str(out))
    assert result.output == f"converted 2 images, 3 annotations into {out}\n"
    assert sorted(p.name for p in (out / "annotations").iterdir()) == ["captions_train.json", "captions_val.json"]


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_with_an_example(cli, command):
    result = cli(command, "--help")
    assert "Example:" in result.output
