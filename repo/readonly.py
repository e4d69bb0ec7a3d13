"""The read-only path of the readers users can steer: the web app, `render --where`, `read_items`.

A condition a user types (the `export --where` filter) and every read of the web app go
through the two functions here, so that moving them to a stricter path (a reader role, a
statement timeout) is a change of this module only.

- `read_only` gives a project whose connections cannot write: SQLite opens the file with
  `mode=ro`, PostgreSQL starts every transaction READ ONLY.
- `selected_rows` runs a user's condition on `annotations_v` at a snapshot, today through
  `repo.query.selected_annotations` (one statement, read-only).
"""

from __future__ import annotations

from sqlalchemy import Connection

from repo.project import Project
from repo.query import selected_annotations
from repo.store.engine import is_sqlite, make_engine
from repo.store.versions import Snapshot


def read_only(project: Project) -> Project:
    """The same project, on an engine that refuses writes."""
    if is_sqlite(project.url):
        engine = make_engine(project.url, read_only=True)
    else:
        engine = make_engine(project.url).execution_options(postgresql_readonly=True)
    return Project(project.directory, project.url, engine)


def selected_rows(connection: Connection, snapshot: Snapshot, where: str) -> set[int]:
    """Row ids (annotations_v.row_id) of the annotations at `snapshot` for which `where` holds;
    a bad condition is a one-line DsrepoError."""
    return selected_annotations(connection, snapshot, where)
