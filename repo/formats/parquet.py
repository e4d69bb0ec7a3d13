"""Parquet: the project's items and annotations as two column tables for analytics engines.

    items.parquet         the columns of the `items_v` view
    annotations.parquet   the columns of the `annotations_v` view, plus geometry:
                          `rle` (COCO's compressed counts string; the mask is the size of the
                          item's image), `polygons` (a list of [x1, y1, x2, y2, ...] parts) and
                          `keypoints` ([x, y, visibility, ...])

DuckDB, Spark or Polars read these files lazily, so they can work on a project larger than
memory; join the two tables on (source, subset, file_name). Rows stream from the database's
cursor into row groups of `row_group_rows` rows: memory holds one group, whatever the size of
the project. Compression is zstd, which all three read.

pyarrow is an optional dependency (the `parquet` extra): it is large, and only this format
needs it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row

from repo.model.paths import output_path
from repo.errors import OptionError, UnsupportedError
from repo.formats.registry import ExportContext, ExportResult, Format, integer, register
from repo.query import annotations_view, items_view
from repo.store import schema
from repo.store.versions import Snapshot

if TYPE_CHECKING:
    import pyarrow

ROW_GROUP_ROWS = 10_000  # polygons as Python lists take ~5 kB a row before a group is written
STREAM_BATCH = 2000

ITEM_COLUMNS = (
    ("item_id", "int64"), ("subset", "string"), ("file_name", "string"), ("width", "int32"),
    ("height", "int32"), ("source", "string"), ("coco_id", "int64"), ("image_path", "string"),
    ("image_sha256", "string"),
)
ANNOTATION_COLUMNS = (
    ("row_id", "int64"), ("subset", "string"), ("file_name", "string"), ("source", "string"),
    ("task", "string"), ("kind", "string"), ("label", "string"), ("coco_id", "int64"),
    ("category_id", "int64"), ("image_id", "int64"), ("bbox_x", "float64"), ("bbox_y", "float64"),
    ("bbox_w", "float64"), ("bbox_h", "float64"), ("area", "float64"), ("iscrowd", "int16"),
    ("score", "float64"), ("num_keypoints", "int32"), ("caption", "string"),
    ("rle", "string"), ("polygons", "polygons"), ("keypoints", "floats"),
)


@dataclass(frozen=True)
class ParquetOptions:
    row_group_rows: int = ROW_GROUP_ROWS


@dataclass
class ParquetResult:
    files: list[Path] = field(default_factory=list)
    items: int = 0
    annotations: int = 0
    row_groups: int = 0


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise UnsupportedError("export -f parquet needs pyarrow: pip install 'dsrepo[parquet]'") from None
    return pyarrow, pyarrow.parquet


def _schema(pa: Any, columns: Sequence[tuple[str, str]]) -> "pyarrow.Schema":
    types = {
        "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(), "float64": pa.float64(),
        "string": pa.string(), "floats": pa.list_(pa.float64()), "polygons": pa.list_(pa.list_(pa.float64())),
    }
    return pa.schema([(name, types[kind]) for name, kind in columns])


class _GroupedWriter:
    """Collects rows column by column and writes a row group each `rows` rows."""

    def __init__(self, path: Path, columns: Sequence[tuple[str, str]], rows: int):
        self.pa, pq = _pyarrow()
        self.schema = _schema(self.pa, columns)
        self.rows = rows
        self.columns: list[list[Any]] = [[] for _ in columns]
        self.written = self.groups = 0
        self.writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")

    def add(self, values: Sequence[Any]) -> None:
        for column, value in zip(self.columns, values):
            column.append(value)
        if len(self.columns[0]) >= self.rows:
            self.flush()

    def flush(self) -> None:
        if not self.columns[0]:
            return
        arrays = [self.pa.array(column, type=kind.type) for column, kind in zip(self.columns, self.schema)]
        self.writer.write_table(self.pa.Table.from_arrays(arrays, schema=self.schema), row_group_size=self.rows)
        self.written += len(self.columns[0])
        self.groups += 1
        self.columns = [[] for _ in self.columns]

    def close(self) -> None:
        self.flush()
        self.writer.close()


def write_parquet(
    out_dir: Path, items: Iterable[Sequence[Any]], annotations: Iterable[Sequence[Any]], options: ParquetOptions
) -> ParquetResult:
    """Write items.parquet and annotations.parquet from rows whose values follow
    ITEM_COLUMNS and ANNOTATION_COLUMNS (rle as bytes or str, polygons and keypoints as lists)."""
    if options.row_group_rows < 1:
        raise OptionError("--row-group-rows must be at least 1")
    result = ParquetResult()
    for name, columns, rows, convert in (
        ("items.parquet", ITEM_COLUMNS, items, None),
        ("annotations.parquet", ANNOTATION_COLUMNS, annotations, _geometry),
    ):
        path = output_path(out_dir, name)
        writer = _GroupedWriter(path, columns, options.row_group_rows)
        try:
            for row in rows:
                writer.add(convert(row) if convert else row)
        finally:
            writer.close()
        result.files.append(path)
        result.row_groups += writer.groups
        if name == "items.parquet":
            result.items = writer.written
        else:
            result.annotations = writer.written
    return result


def _geometry(row: Sequence[Any]) -> list[Any]:
    values = list(row)
    rle = values[-3]
    if isinstance(rle, (bytes, bytearray, memoryview)):
        values[-3] = bytes(rle).decode("ascii")
    keypoints = values[-1]
    if keypoints is not None:
        values[-1] = [float(value) for value in keypoints]
    return values


def write(context: ExportContext) -> ExportResult:
    """The registry's writer: the snapshot's items and (selected) annotations."""
    connection, snapshot = context.connection, context.snapshot
    result = write_parquet(
        context.out_dir, _item_rows(connection, snapshot), _annotation_rows(connection, snapshot, context.selected),
        ParquetOptions(context.options["row_group_rows"]),
    )
    return ExportResult(files=result.files, images=result.items, annotations=result.annotations)


def _stream(connection: Connection, query: Any) -> Iterator[Row[Any]]:
    yield from connection.execute(query, execution_options={"stream_results": True, "yield_per": STREAM_BATCH})


def _item_rows(connection: Connection, snapshot: Snapshot) -> Iterator[Row[Any]]:
    return _stream(connection, items_view(snapshot).order_by(schema.items.c.id))


def _annotation_rows(connection: Connection, snapshot: Snapshot, selected: set[int] | None) -> Iterator[Row[Any]]:
    a = schema.annotations
    query = annotations_view(snapshot).add_columns(a.c.rle, a.c.polygons, a.c.keypoints).order_by(a.c.row_id)
    for row in _stream(connection, query):
        if selected is None or row.row_id in selected:
            yield row


register(Format(
    "parquet",
    "Apache Parquet: items.parquet and annotations.parquet (the views' columns and geometry), for "
    "DuckDB, Spark or Polars (needs the `parquet` extra: pyarrow).",
    writer=write,
    export_options=(
        integer("row_group_rows", "--row-group-rows", default=ROW_GROUP_ROWS, minimum=1,
                help="Rows per row group (memory holds one group)."),
    ),
))
