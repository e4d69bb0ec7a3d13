"""The tables of a project database.

Versioned rows. Every table whose rows reach an export keeps its history in place: a row is
one version of a record, identified across versions by `id` (its lineage; other tables refer
to records by this id), and visible at revision r when `rev_from <= r` and (`rev_to` is null or
`r < rev_to`). Uncommitted work is stamped with the pending revision (HEAD + 1): new rows get
`rev_from = pending`, rows they replace get `rev_to = pending`, and `commit` merely records that
revision. So the working state is simply `rev_to IS NULL`, a change stores only the rows it
touches, and reading any revision is one WHERE clause. `hash` is a digest of the record's
content, so updates and diffs compare rows without reading them whole. A few columns are
caches, not content (`files.content_sha256`, the kept panoptic PNG): see `source_writer`.

Per-file tables (`files`, `file_images`, `categories`, `panoptic_records`) keep what each JSON
file had, so that every file comes back as it was; `items` and `annotations` hold the data
itself. Positions are sparse (multiples of POSITION_STEP) so one insertion renumbers nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    event,
    text,
)

from repo.model.jsonio import dumps_text, parse_json

# Surrogate keys: 64-bit on PostgreSQL, SQLite's rowid on SQLite.
Key = BigInteger().with_variant(Integer, "sqlite")
# COCO ids are signed 64-bit integers.
CocoId = BigInteger


class _JsonText(TypeDecorator[Any]):
    """JSON stored as TEXT on SQLite. A column declared JSON gets numeric affinity there, and
    SQLite then turns a stored `20.0` into the integer 20 (or 2^70 into a float)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else dumps_text(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else parse_json(value)


# SQLAlchemy's JSON, not JSONB: JSONB drops duplicate keys and rewrites numbers.
Json = JSON(none_as_null=True).with_variant(_JsonText(), "sqlite")

POSITION_STEP = 1 << 20

metadata = MetaData()

WORKING_ROW = text("rev_to IS NULL")


def _versioned(name: str, *columns: Column) -> Table:
    return Table(
        name,
        metadata,
        Column("row_id", Key, primary_key=True, autoincrement=False),
        Column("id", BigInteger, nullable=False),
        Column("rev_from", Integer, nullable=False),
        Column("rev_to", Integer, nullable=True),
        Column("hash", LargeBinary(16), nullable=False),
        *columns,
        # Ids are lineages that other rows point to: SQLite must never hand one out twice,
        # even after the rows of an uncommitted change are deleted.
        sqlite_autoincrement=True,
    )


def _working_index(name: str, table: Table, *columns: str, unique: bool = False) -> Index:
    """An index over the working state only, so history does not slow the common queries.
    PostgreSQL gets the same condition when the schema is built there (`_partial_on_postgresql`)."""
    return Index(name, *(table.c[c] for c in columns), unique=unique, sqlite_where=WORKING_ROW)


@event.listens_for(metadata, "before_create")
def _partial_on_postgresql(_metadata: MetaData, connection: Any, **_kw: Any) -> None:
    """Give the working-state indexes their condition on PostgreSQL too. Declared up front, a
    `postgresql_where` makes SQLAlchemy load its PostgreSQL dialect to check the option's name:
    0.02 s at every start, SQLite projects included."""
    if connection.dialect.name != "postgresql":
        return
    for table in metadata.tables.values():
        for index in table.indexes:
            if index.dialect_kwargs.get("sqlite_where") is not None:
                index.dialect_kwargs["postgresql_where"] = index.dialect_kwargs["sqlite_where"]


def _history_index(table: Table) -> Index:
    return Index(f"ix_{table.name}_lineage", table.c.id, table.c.rev_from)


# Who the database belongs to: one row, written at `create` (see `repo.store.project`).
project = Table(
    "project",
    metadata,
    Column("name", Text, nullable=False),
    Column("directory", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

revisions = Table(
    "revisions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("hash", String(40), nullable=False, unique=True),
    Column("message", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("changes", Json),  # counts of added / removed rows per table, for `log`
)

tags = Table(
    "tags",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("seq", Integer, nullable=False),
)


def _content_addressed(name: str) -> Table:
    """Bytes stored once by their SHA-256, append-only."""
    return Table(
        name,
        metadata,
        Column("sha256", String(64), primary_key=True),
        Column("size", BigInteger, nullable=False),
        Column("data", LargeBinary, nullable=False),
    )


blobs = _content_addressed("blobs")  # image files

# The panoptic PNGs imports read, each once by content (migration 0006): an export writes one
# as it was when its record's segments still are those cut from it.
panoptic_pngs = _content_addressed("panoptic_pngs")

# What `stat` said of each file an import or update hashed, and its digest (migration 0008): a
# cache outside versions that spares reading files that did not change (see store.file_digests).
file_digests = Table(
    "file_digests",
    metadata,
    Column("path", Text, primary_key=True),
    Column("device", BigInteger, nullable=False),
    Column("inode", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("ctime_ns", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
)

# The windows of each big annotation file an import or update read in windows, by the SHA-256
# of the file's bytes (migration 0010): each window's digest and number of elements, `place` -1
# the digest of every other byte. A cache outside versions: an update of a file that changed
# reads again only the windows that did (see repo.model.windows).
window_digests = Table(
    "window_digests",
    metadata,
    Column("file_sha256", String(64), primary_key=True),
    Column("place", Integer, primary_key=True),
    Column("elements", Integer, nullable=False),
    Column("digest", LargeBinary(32), nullable=False),
)

sources = _versioned(
    "sources",
    Column("name", String(200), nullable=False),
    Column("format", String(50), nullable=False),
    Column("path", Text, nullable=True),  # where the files came from
    Column("options", Json),
)

labels = _versioned(
    "labels",
    Column("name", Text, nullable=False),
)

files = _versioned(
    "files",
    Column("source_id", BigInteger, nullable=False),
    Column("task", String(32), nullable=False),
    Column("subset", Text, nullable=False),
    Column("name", Text, nullable=False),  # the file's own name in the source
    Column("position", BigInteger, nullable=False),
    Column("layout", Json, nullable=False),  # top-level keys in file order
    Column("info", Json),
    Column("licenses", Json),
    Column("extra", Json),  # top-level keys COCO does not define
    Column("content_sha256", String(64)),  # the bytes last read (update skips a file that kept them)
)

categories = _versioned(
    "categories",
    Column("file_id", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("coco_id", CocoId, nullable=False),
    Column("name", Text, nullable=False),
    Column("supercategory", Text),
    Column("label_id", BigInteger, nullable=False),
    Column("extra", Json),  # keypoints, skeleton, isthing, color, ...
)

items = _versioned(
    "items",
    Column("source_id", BigInteger, nullable=False),
    Column("subset", Text, nullable=False),
    Column("file_name", Text, nullable=False),
    Column("coco_id", CocoId, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("extra", Json),  # license, coco_url, flickr_url, date_captured, anything else
    Column("image_path", Text),  # relative to the source's root, where the image was found
    Column("image_size", BigInteger),
    Column("image_sha256", String(64)),
)

file_images = _versioned(
    "file_images",
    Column("file_id", BigInteger, nullable=False),
    Column("item_id", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("coco_id", CocoId, nullable=False),
    # The image record as this file had it, when it differs from the item's (else null).
    Column("record", Json),
)

annotations = _versioned(
    "annotations",
    Column("file_id", BigInteger, nullable=False),
    Column("item_id", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("coco_id", CocoId),
    Column("category_id", CocoId),
    Column("iscrowd", SmallInteger),
    Column("score", Float),
    Column("area", Float),
    Column("bbox_x", Float),
    Column("bbox_y", Float),
    Column("bbox_w", Float),
    Column("bbox_h", Float),
    Column("number_forms", SmallInteger, nullable=False),
    Column("polygons", Json),
    Column("rle", LargeBinary),  # compressed COCO RLE counts
    Column("rle_form", String(8)),  # how the file wrote it: string or list
    Column("keypoints", Json),
    Column("num_keypoints", Integer),
    Column("caption", Text),
    Column("attributes", Json),
    Column("extra", Json),
)

panoptic_records = _versioned(
    "panoptic_records",
    Column("file_id", BigInteger, nullable=False),
    Column("item_id", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("png_name", Text, nullable=False),
    Column("extra", Json),
    # The imported PNG (its bytes in `panoptic_pngs`) and the digest of the segments it paints: an
    # export whose segments have that digest writes the PNG as it was (migration 0006).
    Column("png_sha256", String(64)),
    Column("png_segments_hash", LargeBinary(16)),
)

VERSIONED = (sources, labels, files, categories, items, file_images, annotations, panoptic_records)

_working_index("uq_sources_name", sources, "name", unique=True)
_working_index("uq_labels_name", labels, "name", unique=True)
_working_index("ix_files_source", files, "source_id")
_working_index("ix_categories_file", categories, "file_id", "position")
_working_index("uq_items_key", items, "source_id", "subset", "file_name", unique=True)
_working_index("ix_file_images_file", file_images, "file_id", "position")
_working_index("ix_file_images_item", file_images, "item_id")
_working_index("ix_annotations_file", annotations, "file_id", "position")
_working_index("ix_panoptic_records_file", panoptic_records, "file_id", "position")
# The per-label questions (migration 0005): the annotations_v join answered from indexes.
_working_index("ix_categories_code", categories, "file_id", "coco_id")
_working_index("ix_file_images_link", file_images, "file_id", "item_id")
_working_index("ix_items_working", items, "id")
# It also serves every lookup of an item's annotations (migration 0009 dropped their own index).
_working_index("ix_annotations_item_cover", annotations, "item_id", "file_id", "category_id")
for _table in VERSIONED:
    _history_index(_table)
Index("ix_file_images_history", file_images.c.file_id, file_images.c.rev_from)
Index("ix_annotations_history", annotations.c.file_id, annotations.c.rev_from)
