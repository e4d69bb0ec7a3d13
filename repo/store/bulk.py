"""Inserting many rows fast: COPY on PostgreSQL (see copy_pipe), the driver's executemany on SQLite.

SQLAlchemy's executemany runs every value of every row through Python-level processing
(parameter dicts, type processors); for tens of thousands of annotations that was most of an
import's time. Here each row becomes a list of values once, JSON values are serialized by our own
writer (the same one the engine uses, so stored text is identical either way), and the
driver does the rest, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Connection, Insert, Table
from sqlalchemy.exc import DBAPIError

from repo.model.jsonio import dumps_text
from repo.store.copy_pipe import put_copy


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    names = [column.name for column in table.c]
    json_places = [place for place, column in enumerate(table.c) if isinstance(column.type, JSON)]
    tuples = []
    for row in rows:
        values = list(map(row.get, names))
        for place in json_places:
            if values[place] is not None:
                values[place] = dumps_text(values[place])
        tuples.append(values)
    columns = ", ".join(names)
    if connection.dialect.name == "postgresql":
        put_copy(connection, f"COPY {table.name} ({columns}) FROM STDIN", tuples)  # sent by another thread
        return
    statement = f"INSERT INTO {table.name} ({columns}) VALUES ({', '.join('?' * len(names))})"
    try:
        connection.connection.driver_connection.executemany(statement, tuples)
    except connection.dialect.loaded_dbapi.Error as exc:
        # The same exception types as SQLAlchemy's own execute (IntegrityError, ...).
        raise DBAPIError.instance(statement, None, exc, connection.dialect.loaded_dbapi.Error) from exc


def insert_skipping_conflicts(connection: Connection, table: Table, **conflict: Any) -> Insert:
    """`INSERT ... ON CONFLICT (conflict) DO NOTHING`."""
    return dialect_insert(connection, table).on_conflict_do_nothing(**conflict)


def dialect_insert(connection: Connection, table: Table) -> Any:
    """The dialect's own INSERT construct, which has `ON CONFLICT` (each dialect spells it with
    its own). PostgreSQL's module is imported for PostgreSQL projects only: loading it takes
    longer (0.02 s) than most commands on a SQLite project spend on their work."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
