"""The read-only path of the readers users can steer: the web app, `render --where`, `read_items`.

Every read of the web app, and every condition a user types (the `export --where` filter, in
`read_items`, `render` and the web app's filter box), goes through the two functions here: the
one place that ties these readers to the project's read-only path for user SQL
(`repo.query.selected_annotations`, over `repo.store.user_sql`).

- `read_only` gives a project whose connections cannot write: SQLite opens the file with
  `mode=ro`, PostgreSQL starts every transaction READ ONLY.
- `selected_rows` runs a user's condition on `annotations_v` at a snapshot as `export --where`
  does: one statement, in a savepoint always rolled back, with no server powers (PostgreSQL's
  reader role; SQLite's read-only authorizer), stopped at `timeout` seconds.
"""

from __future__ import annotations

from sqlalchemy import Connection

from repo.project import Project
from repo.query import selected_annotations
from repo.store.engine import is_sqlite, make_engine
from repo.store.user_sql import DEFAULT_TIMEOUT
from repo.store.versions import Snapshot


def read_only(project: Project) -> Project:
    """The same project, on an engine that refuses writes."""
    if is_sqlite(project.url):
        engine = make_engine(project.url, read_only=True)
    else:
        engine = make_engine(project.url).execution_options(postgresql_readonly=True)
    return Project(project.directory, project.url, engine)


def selected_rows(
    connection: Connection, snapshot: Snapshot, where: str, timeout: float | None = DEFAULT_TIMEOUT
) -> set[int]:
    """Row ids (annotations_v.row_id) of the annotations at `snapshot` for which `where` holds;
    a bad or forbidden condition is a one-line QueryError."""
    return selected_annotations(connection, snapshot, where, timeout)
