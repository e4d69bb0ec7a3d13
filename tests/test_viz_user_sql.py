"""The readers users steer (`read_items`, `render --where`, the web app's filter box) run a
user's condition on the read-only path for user SQL (repo/readonly.py -> repo.query): what that
path refuses, they refuse, with one line, and the database stays as it was."""

from __future__ import annotations

import pytest

from helpers import DATA, Backend, database_contents
from repo.dataset import read_items
from repo.errors import QueryError
from repo.importing import import_dataset
from repo.render import render_item
from repo.web.app import create_app

PANOPTIC = DATA / "panopticapi_sample" / "coco"
# What the read-only path refuses: a pragma function on SQLite (its authorizer reads only),
# a server file on PostgreSQL (the condition runs as the project's reader role).
FORBIDDEN = {
    "sqlite": "row_id IN (SELECT 1 FROM pragma_table_info('items'))",
    "postgresql": "pg_read_file('postgresql.conf') IS NOT NULL",
}


def test_the_readers_refuse_what_the_read_only_path_refuses(backend, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", PANOPTIC, name="coco")
    before = database_contents(project)
    condition = FORBIDDEN[backend.name]
    with pytest.raises(QueryError, match="^--where: ") as refused:
        list(read_items(project, where=condition))
    assert "\n" not in str(refused.value)
    with pytest.raises(QueryError, match="^--where: "):
        render_item(project, "000000142238.jpg", tmp_path / "x.png", where=condition)
    assert not (tmp_path / "x.png").exists()
    page = create_app(project).test_client().get("/", query_string={"where": condition})
    assert page.status_code == 400 and "--where:" in page.get_data(as_text=True)
    assert database_contents(project) == before


def test_on_postgresql_a_condition_runs_as_the_reader_role(pg_admin_url, tmp_path):
    backend = Backend("postgresql", tmp_path, pg_admin_url)
    try:
        _runs_as_the_reader(backend.create())
    finally:
        backend.drop_all()


def _runs_as_the_reader(project) -> None:
    import_dataset(project, "coco", PANOPTIC, name="coco")
    every = sum(len(item.annotations) for item in read_items(project))
    as_reader = read_items(project, where="current_user LIKE 'dsrepo_reader_%'")
    assert every > 0 and sum(len(item.annotations) for item in as_reader) == every
