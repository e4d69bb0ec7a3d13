"""SQL over a project: stable views, read-only queries, and annotation filters for export.

Two views are part of dsrepo's interface (see the README for their columns):

- `items_v`: one row per image of each source (subset, file_name, width, height, source, ...);
- `annotations_v`: one row per annotation or panoptic segment, with its image, source, task,
  kind, label name, COCO id, bbox, area, iscrowd, score, num_keypoints and caption.

The database holds them for the working state (created by a migration). The same bodies are
built here for any revision, so `export --rev R --where COND` filters what R held. SQL that
users write goes through `repo.store.user_sql` only (one statement, read-only, rolled back,
no superuser powers, a timeout): `open_query` for a whole statement (the CLI's `query`, the
web app), `selected_annotations` for a condition inside an export's transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, and_, select

from repo.project import Project
from repo.store import revisions, schema
from repo.store.engine import discarded_transaction, is_sqlite, make_engine
from repo.store.user_sql import DEFAULT_TIMEOUT, Rows, user_statement
from repo.store.versions import WORKING_STATE, Snapshot


def annotations_view(snapshot: Snapshot = WORKING_STATE, *, image_id_lookup: bool = False) -> Select[Any]:
    """The body of annotations_v at `snapshot`. With `image_id_lookup`, image_id is a subquery
    in the select list rather than a join, as SQLite's stored view has it (migration 0007): a
    query that does not read image_id then does not look it up."""
    a, f, i, s = schema.annotations, schema.files, schema.items, schema.sources
    fi, c, lb = schema.file_images, schema.categories, schema.labels
    image_link = and_(fi.c.file_id == a.c.file_id, fi.c.item_id == a.c.item_id, snapshot.visible(fi))
    image_id = select(fi.c.coco_id).where(image_link).scalar_subquery() if image_id_lookup else fi.c.coco_id
    view = (
        select(
            a.c.row_id, i.c.subset, i.c.file_name, s.c.name.label("source"), f.c.task, a.c.kind,
            lb.c.name.label("label"), a.c.coco_id, a.c.category_id, image_id.label("image_id"),
            a.c.bbox_x, a.c.bbox_y, a.c.bbox_w, a.c.bbox_h, a.c.area, a.c.iscrowd, a.c.score,
            a.c.num_keypoints, a.c.caption,
        )
        .select_from(a)
        .join(f, and_(f.c.id == a.c.file_id, snapshot.visible(f)))
        .join(i, and_(i.c.id == a.c.item_id, snapshot.visible(i)))
        .join(s, and_(s.c.id == f.c.source_id, snapshot.visible(s)))
    )
    if not image_id_lookup:
        view = view.outerjoin(fi, image_link)
    return (
        view
        .outerjoin(c, and_(c.c.file_id == a.c.file_id, c.c.coco_id == a.c.category_id, snapshot.visible(c)))
        .outerjoin(lb, and_(lb.c.id == c.c.label_id, snapshot.visible(lb)))
        .where(snapshot.visible(a))
    )


def user_view(connection: Connection, snapshot: Snapshot) -> Select[Any]:
    """annotations_v's body at `snapshot` as the database's stored view has it."""
    return annotations_view(snapshot, image_id_lookup=connection.dialect.name == "sqlite")


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


_LEADING_WITH = re.compile(r"\s*with(\s+recursive)?\s", re.IGNORECASE)


def at_revision(connection: Connection, sql: str, rev: str) -> str:
    """`sql` over items_v and annotations_v as they were at `rev`: the views' bodies at that
    revision come first, as common table expressions of the same names, which hide the stored
    views (the statement's own WITH list, if any, follows them)."""
    snapshot = revisions.snapshot(connection, rev)
    views = (
        f"items_v AS ({view_sql(items_view(snapshot), connection)}), "
        f"annotations_v AS ({view_sql(user_view(connection, snapshot), connection)})"
    )
    leading = _LEADING_WITH.match(sql)
    if leading:
        return f"{sql[:leading.end()]}{views}, {sql[leading.end():]}"
    return f"WITH {views} {sql}"


def selected_annotations(
    connection: Connection, snapshot: Snapshot, condition: str, timeout: float | None = DEFAULT_TIMEOUT
) -> set[int]:
    """Row ids of the annotations (at `snapshot`) for which `condition` on annotations_v holds.

    Runs inside the caller's (the export's) transaction, so it sees the same data; whatever
    the condition does is rolled back before the export's next statement."""
    body = view_sql(user_view(connection, snapshot), connection)
    sql = f"SELECT row_id FROM ({body}) AS annotations_v WHERE {condition}"
    with user_statement(connection, sql, what="--where", timeout=timeout) as rows:
        return {row[0] for row in rows}


@contextmanager
def open_query(
    project: Project, sql: str, timeout: float | None = DEFAULT_TIMEOUT, *, rev: str | None = None
) -> Iterator[Rows]:
    """Run one user statement against the project (the views show the working state, or
    revision `rev`: see `at_revision`); its rows stream while the context is open, and its
    transaction is rolled back at the end.

    The read-only path the CLI's `query` and the web app use: see `repo.store.user_sql` for
    what it guarantees. Failures are one-line DsrepoErrors."""
    engine = make_engine(project.url, read_only=True) if is_sqlite(project.url) else project.engine
    try:
        with discarded_transaction(engine) as connection:
            if rev is not None:
                sql = at_revision(connection, sql, rev)
            with user_statement(connection, sql, what="query", timeout=timeout) as rows:
                yield rows
    finally:
        if engine is not project.engine:
            engine.dispose()


@dataclass
class QueryResult:
    """A query's column names and rows."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_query(
    project: Project, sql: str, timeout: float | None = DEFAULT_TIMEOUT, *, rev: str | None = None
) -> QueryResult:
    """`open_query`, its rows collected: for results known to be small."""
    with open_query(project, sql, timeout, rev=rev) as rows:
        return QueryResult(rows.columns, list(rows))
