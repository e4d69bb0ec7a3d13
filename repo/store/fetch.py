"""Reading a project's files back, streamed from cursors, at any snapshot.

Each function returns rows in file order; the big ones (images, annotations, segments) are
generators over a streaming cursor, so an export holds one batch in memory, not a file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Row, Select, Table, and_, select

from repo.store import schema
from repo.store.versions import Snapshot

STREAM_BATCH = 2000
_a, _fi, _i, _pr = schema.annotations, schema.file_images, schema.items, schema.panoptic_records


def _stream(connection: Connection, query: Any) -> Iterator[Row[Any]]:
    """Rows in batches from a server-side cursor (the options apply to this statement only)."""
    yield from connection.execute(query, execution_options={"stream_results": True, "yield_per": STREAM_BATCH})


def source_rows(connection: Connection, snapshot: Snapshot) -> list[Row[Any]]:
    sources = schema.sources
    query = select(sources).where(snapshot.visible(sources)).order_by(sources.c.id)
    return list(connection.execute(query))


def file_rows(connection: Connection, snapshot: Snapshot, source_id: int | None = None) -> list[Row[Any]]:
    files = schema.files
    query = select(files).where(snapshot.visible(files))
    if source_id is not None:
        query = query.where(files.c.source_id == source_id)
    return list(connection.execute(query.order_by(files.c.source_id, files.c.position)))


def _in_file(table: Table, snapshot: Snapshot, file_id: int) -> Select[Any]:
    """A per-file table's rows of one file, in file order."""
    return select(table).where(table.c.file_id == file_id, snapshot.visible(table)).order_by(table.c.position)


def category_rows(connection: Connection, snapshot: Snapshot, file_id: int) -> list[Row[Any]]:
    return list(connection.execute(_in_file(schema.categories, snapshot, file_id)))


def image_rows(connection: Connection, snapshot: Snapshot, file_id: int) -> Iterator[Row[Any]]:
    """The file's images: its own id and record for each, with the item's fields."""
    query = (
        select(
            _fi.c.item_id, _fi.c.coco_id, _fi.c.record, _i.c.file_name, _i.c.width, _i.c.height,
            _i.c.extra, _i.c.subset, _i.c.source_id, _i.c.image_path, _i.c.image_sha256, _i.c.image_size,
        )
        .join(_i, and_(_i.c.id == _fi.c.item_id, snapshot.visible(_i)))
        .where(_fi.c.file_id == file_id, snapshot.visible(_fi))
        .order_by(_fi.c.position)
    )
    return _stream(connection, query)


def annotation_rows(connection: Connection, snapshot: Snapshot, file_id: int) -> Iterator[Row[Any]]:
    """The file's annotations (or panoptic segments) in file order, with their item id."""
    return _stream(connection, _in_file(_a, snapshot, file_id))


def panoptic_rows(connection: Connection, snapshot: Snapshot, file_id: int) -> Iterator[Row[Any]]:
    return _stream(connection, _in_file(_pr, snapshot, file_id))

