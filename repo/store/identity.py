"""Whose database this is: the project's name and folder, written once by `create`.

A database holds one project. `create` refuses a database that is not empty, and when the
tables it finds are another project's, names that project, so that the user can open it
instead of wondering what the tables are.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Connection, insert, inspect, select

from repo.store import migrate, schema


def record_identity(connection: Connection, name: str, directory: str) -> None:
    connection.execute(insert(schema.project).values(
        name=name, directory=directory, created_at=datetime.now(timezone.utc)
    ))


def existing_project(connection: Connection) -> str | None:
    """How to name the dsrepo project a database holds, or None if it holds none."""
    tables = set(inspect(connection).get_table_names())
    if schema.project.name in tables:
        row = connection.execute(select(schema.project.c.name, schema.project.c.directory).limit(1)).first()
        if row is not None:
            return f"the dsrepo project '{row.name}' (folder {row.directory})"
    if "alembic_version" in tables:
        return f"a dsrepo project (schema {migrate.schema_revision(connection)})"
    return None
