"""SQL over a project: stable views, read-only queries, and annotation filters for export.

Two views are part of dsrepo's interface (see the README for their columns):

- `items_v`: one row per image of each source (subset, file_name, width, height, source, ...);
- `annotations_v`: one row per annotation or panoptic segment, with its image, source, task,
  kind, label name, COCO id, bbox, area, iscrowd, score, num_keypoints and caption.

The database holds them for the working state (created by a migration). The same bodies are
built here for any revision, so `export --rev R --where COND` filters what R held. User SQL
runs read-only: on SQLite through a `mode=ro` connection whose authorizer allows reading only,
on PostgreSQL in a READ ONLY transaction, as a single prepared statement.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, and_, select
from sqlalchemy.exc import DBAPIError

from repo.errors import QueryError
from repo.project import Project
from repo.store import revisions, schema
from repo.store.engine import is_sqlite, make_engine
from repo.store.versions import WORKING_STATE, Snapshot

_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}


def annotations_view(snapshot: Snapshot = WORKING_STATE) -> Select[Any]:
    a, f, i, s = schema.annotations, schema.files, schema.items, schema.sources
    fi, c, lb = schema.file_images, schema.categories, schema.labels
    return (
        select(
            a.c.row_id, i.c.subset, i.c.file_name, s.c.name.label("source"), f.c.task, a.c.kind,
            lb.c.name.label("label"), a.c.coco_id, a.c.category_id, fi.c.coco_id.label("image_id"),
            a.c.bbox_x, a.c.bbox_y, a.c.bbox_w, a.c.bbox_h, a.c.area, a.c.iscrowd, a.c.score,
            a.c.num_keypoints, a.c.caption,
        )
        .select_from(a)
        .join(f, and_(f.c.id == a.c.file_id, snapshot.visible(f)))
        .join(i, and_(i.c.id == a.c.item_id, snapshot.visible(i)))
        .join(s, and_(s.c.id == f.c.source_id, snapshot.visible(s)))
        .outerjoin(fi, and_(fi.c.file_id == a.c.file_id, fi.c.item_id == a.c.item_id, snapshot.visible(fi)))
        .outerjoin(c, and_(c.c.file_id == a.c.file_id, c.c.coco_id == a.c.category_id, snapshot.visible(c)))
        .outerjoin(lb, and_(lb.c.id == c.c.label_id, snapshot.visible(lb)))
        .where(snapshot.visible(a))
    )


def items_view(snapshot: Snapshot = WORKING_STATE) -> Select[Any]:
    i, s = schema.items, schema.sources
    return (
        select(
            i.c.id.label("item_id"), i.c.subset, i.c.file_name, i.c.width, i.c.height,
            s.c.name.label("source"), i.c.coco_id, i.c.image_path, i.c.image_sha256,
        )
        .select_from(i)
        .join(s, and_(s.c.id == i.c.source_id, snapshot.visible(s)))
        .where(snapshot.visible(i))
    )


def view_sql(view: Select[Any], connection: Connection) -> str:
    return str(view.compile(connection, compile_kwargs={"literal_binds": True}))


def selected_annotations(connection: Connection, snapshot: Snapshot, condition: str) -> set[int]:
    """Row ids of the annotations (at `snapshot`) for which `condition` on annotations_v holds."""
    body = view_sql(annotations_view(snapshot), connection)
    sql = f"SELECT row_id FROM ({body}) AS annotations_v WHERE {condition}"
    _, rows = _run_read_only(connection, sql, "--where")
    return {row[0] for row in rows}


@dataclass
class QueryResult:
    """A query's column names and rows."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_query(project: Project, sql: str, rev: str | None = None) -> QueryResult:
    """Run one SQL statement read-only against the project; the views show the working
    state, or with `rev` what that revision held (see `at_revision`)."""
    if is_sqlite(project.url):
        engine = make_engine(project.url, read_only=True)
        try:
            with engine.connect() as connection, connection.begin():
                sql = at_revision(connection, sql, rev) if rev is not None else sql
                raw = connection.connection.driver_connection
                raw.set_authorizer(_read_only_authorizer)
                try:
                    columns, rows = _run_read_only(connection, sql, "query")
                finally:
                    raw.set_authorizer(None)
        finally:
            engine.dispose()
    else:
        with project.reading() as connection:
            sql = at_revision(connection, sql, rev) if rev is not None else sql
            columns, rows = _run_read_only(connection, sql, "query")
    return QueryResult(columns, rows)


_LEADING_WITH = re.compile(r"\s*with(\s+recursive)?\s", re.IGNORECASE)


def at_revision(connection: Connection, sql: str, rev: str) -> str:
    """`sql` over the views as revision `rev` held them: their bodies at that snapshot become
    common table expressions of the statement, which shadow the views of the same names (a
    statement with a WITH clause of its own gets them in front of its own)."""
    snapshot = revisions.snapshot(connection, rev)
    views = (
        f"annotations_v AS ({view_sql(annotations_view(snapshot), connection)}), "
        f"items_v AS ({view_sql(items_view(snapshot), connection)})"
    )
    leading = _LEADING_WITH.match(sql)
    if leading:
        return f"WITH{leading.group(1) or ''} {views}, {sql[leading.end():]}"
    return f"WITH {views}\n{sql}"


def _read_only_authorizer(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


def _run_read_only(connection: Connection, sql: str, what: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """One statement, read-only; a database error becomes a one-line user error."""
    raw = connection.connection.driver_connection
    try:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            cursor = raw.cursor()
            cursor.execute(sql, prepare=True)  # the extended protocol refuses a second statement
        else:
            cursor = raw.cursor()
            cursor.execute(sql)
        columns = [d[0] for d in cursor.description] if cursor.description else []
        rows = [tuple(row) for row in cursor.fetchall()] if cursor.description else []
        cursor.close()
        return columns, rows
    except (DBAPIError, sqlite3.Error) as exc:
        raise QueryError(f"{what}: {_first_line(exc)}") from None
    except Exception as exc:  # psycopg's errors, without importing psycopg for SQLite users
        if type(exc).__module__.startswith("psycopg"):
            raise QueryError(f"{what}: {_first_line(exc)}") from None
        raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if "not authorized" in text or "readonly database" in text or "read-only transaction" in text:
        return f"refused: queries are read-only ({text.splitlines()[0]})"
    return text.splitlines()[0] if text else type(exc).__name__

