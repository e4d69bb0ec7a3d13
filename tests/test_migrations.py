"""Schema migrations: a project made by an older dsrepo upgrades with its data intact, and a
database is refused for `create` when it already holds a project, naming that project."""

from __future__ import annotations

import pytest
from alembic import command

from helpers import DATA, assert_same_file
from repo.errors import ConflictError, SchemaError
from repo.exporting import export_dataset
from repo.importing import import_dataset
from repo.project import Project
from repo.store import migrate

INSTANCES = DATA / "datumaro_coco" / "coco_instances"


def test_a_0002_project_upgrades_with_its_data(backend, tmp_path, cli):
    """Revision 0003 renames annotations.num_flags: integers must stay integers after it."""
    project = backend.create()
    import_dataset(project, "coco_instances", INSTANCES, name="a")
    with project.writing() as connection:
        command.downgrade(migrate.alembic_config(connection), "0002")
    with pytest.raises(SchemaError, match="has the older schema 0002"):
        Project.open(project.directory)
    result = cli("upgrade", "-p", project.directory)
    assert result.output == f"schema 0002 -> {migrate.latest_schema_revision()}\n"
    export_dataset(Project.open(project.directory), "coco_instances", tmp_path / "out")
    for name in ("instances_train.json", "instances_val.json"):
        assert_same_file(INSTANCES / "annotations" / name, tmp_path / "out" / "annotations" / name)


def test_create_names_the_project_a_database_holds(backend, tmp_path):
    first = backend.create("first")
    url = first.url
    with pytest.raises(ConflictError) as refused:
        Project.create(tmp_path / "second", url)
    assert f"holds the dsrepo project 'first' (folder {first.directory.resolve()})" in str(refused.value)
    assert not (tmp_path / "second").exists()
