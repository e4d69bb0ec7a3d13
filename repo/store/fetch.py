"""Reading a project's files back, streamed from cursors, at any snapshot.

Each function returns rows in file order; the big ones (images, annotations, segments) are
generators over a streaming cursor, so an export holds one batch in memory, not a file. An
export that copies an annotation's JSON values (polygons, keypoints, attributes) unchanged
reads them as the text they are stored as, which its JSON writer splices in unparsed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Connection,
    Row,
    Select,
    Table,
    Text,
    TypeDecorator,
    and_,
    any_,
    cast,
    func,
    literal,
    select,
    type_coerce,
)

from repo.model.jsonio import dumps_text
from repo.store import schema
from repo.store.versions import Snapshot

STREAM_BATCH = 2000
SEGMENT_BATCH = 500  # a panoptic segment's row holds its mask
_a, _fi, _i, _pr = schema.annotations, schema.file_images, schema.items, schema.panoptic_records
COPIED_JSON = ("polygons", "keypoints", "attributes")  # annotation columns an export writes as they are
# The columns a COCO annotation record is written from (repo.coco.writer), and its item.
RECORD_COLUMNS = (
    "item_id", "coco_id", "category_id", "iscrowd", "score", "area", "bbox_x", "bbox_y", "bbox_w", "bbox_h",
    "number_forms", "polygons", "rle", "rle_form", "keypoints", "num_keypoints", "caption", "attributes", "extra",
)
# The columns a panoptic segment is written (repo.coco.writer.segment_object) and painted from,
# its item, and its row id (what `--where` selects).
SEGMENT_COLUMNS = (
    "row_id", "item_id", "coco_id", "category_id", "iscrowd", "score", "area", "bbox_x", "bbox_y", "bbox_w", "bbox_h",
    "number_forms", "rle", "attributes", "extra",
)


class _JsonAsStored(TypeDecorator[Any]):
    """A JSON column's stored text, as an orjson Fragment: written out as it is, never parsed."""

    impl = Text
    cache_ok = True

    def process_result_value(self, value: str | None, dialect: Any) -> orjson.Fragment | None:
        return None if value is None else orjson.Fragment(value)


def _stream(connection: Connection, query: Any, batch: int = STREAM_BATCH) -> Iterator[Row[Any]]:
    """Rows in batches from a server-side cursor (the options apply to this statement only)."""
    yield from connection.execute(query, execution_options={"stream_results": True, "yield_per": batch})


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


def annotation_rows(
    connection: Connection, snapshot: Snapshot, file_id: int, selected: Collection[int] | None = None,
    *, for_writer: bool = False,
) -> Iterator[Row[Any]]:
    """The file's annotations (or panoptic segments) in file order, with their item id; only
    those whose row ids are `selected`, unless that is None. `for_writer` reads only
    RECORD_COLUMNS, those of COPIED_JSON as orjson Fragments of their stored text."""
    query = _in_file(_a, snapshot, file_id)
    if for_writer:
        query = query.with_only_columns(*(
            _as_stored(connection, _a.c[name]) if name in COPIED_JSON else _a.c[name] for name in RECORD_COLUMNS
        ))
    if selected is not None:
        query = query.where(among(connection, _a.c.row_id, selected))
    return _stream(connection, query)


def _as_stored(connection: Connection, column: Any) -> ColumnElement[Any]:
    text = cast(column, Text) if connection.dialect.name == "postgresql" else column  # SQLite stores TEXT
    return type_coerce(text, _JsonAsStored()).label(column.name)


def among(connection: Connection, column: ColumnElement[Any], ids: Collection[int]) -> ColumnElement[bool]:
    """`column IN ids`, the ids sent as one parameter that the database unpacks: a statement
    with a quarter of a million literals takes longer to send and to plan than to run.
    PostgreSQL hashes an array compared with `= ANY` and keeps reading in index order; SQLite
    gets a JSON array (`column + 0` keeps it reading in the index order the caller asked
    for, not id by id and then sorting the rows)."""
    if connection.dialect.name == "postgresql":
        return column == any_(literal(list(ids), ARRAY(BigInteger)))
    values = func.json_each(dumps_text(list(ids))).table_valued("value")
    return (column + 0).in_(select(values.c.value))


def segment_rows(connection: Connection, snapshot: Snapshot, file_id: int) -> Iterator[Row[Any]]:
    """The panoptic file's segments in file order (SEGMENT_COLUMNS only)."""
    query = _in_file(_a, snapshot, file_id).with_only_columns(*(_a.c[name] for name in SEGMENT_COLUMNS))
    return _stream(connection, query, SEGMENT_BATCH)


def panoptic_rows(connection: Connection, snapshot: Snapshot, file_id: int) -> Iterator[Row[Any]]:
    return _stream(connection, _in_file(_pr, snapshot, file_id))


def panoptic_count(connection: Connection, snapshot: Snapshot, file_id: int) -> int:
    query = select(func.count()).select_from(_pr).where(_pr.c.file_id == file_id, snapshot.visible(_pr))
    return connection.execute(query).scalar_one()
