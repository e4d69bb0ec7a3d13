"""What an update needs to know of the rows a file gave when it was last read.

An update leaves a file unread when its bytes are those last read (`files.content_sha256`)
and its rows are still the ones those bytes gave: no row of the file was written or closed
after the file's own row, which is written again whenever an update changes its rows (see
`source_writer`); a checkout after that makes the file be read again, and a label change
forgets the digests of the files it touches (also within one uncommitted revision, where
row stamps cannot tell). A panoptic
PNG is not decoded again when its bytes are those kept (`panoptic_records.png_sha256`) and its
stored segments still have the fingerprint of the segments cut from it.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, func, select, update

from repo.model.hashing import segments_fingerprint
from repo.model.records import AnnotationRecord, KeptPng
from repo.store import schema

FILE_TABLES = (schema.categories, schema.file_images, schema.annotations, schema.panoptic_records)


def newest_row(connection: Connection, file_id: int) -> int:
    """The newest revision stamp among a file's rows: a working row's `rev_from`, a closed
    row's `rev_to` (0 if it has none). A change to the file's rows after its own row was
    written (a new version, a closed row, a restored one) makes it newer than that row."""
    newest = 0
    for table in FILE_TABLES:
        stamp = connection.execute(
            select(func.max(func.coalesce(table.c.rev_to, table.c.rev_from))).where(table.c.file_id == file_id)
        ).scalar()
        newest = max(newest, stamp or 0)
    return newest


def forget_digests(connection: Connection, file_ids: Collection[int]) -> None:
    """Make the next update read these files again: their rows were changed by something else
    than reading them (a label change). Done in place: a missing digest only costs a read."""
    files = schema.files
    if file_ids:
        connection.execute(
            update(files).where(files.c.id.in_(list(file_ids)), files.c.rev_to.is_(None)).values(content_sha256=None)
        )


def file_links(connection: Connection, file_id: int) -> list[tuple[int, bool]]:
    """The working image links of a file: (item id, whether the file has a record of its own
    for the image, one that differs from the item's)."""
    links = schema.file_images
    query = select(links.c.item_id, links.c.record.is_not(None)).where(
        links.c.file_id == file_id, links.c.rev_to.is_(None)
    )
    return [(item_id, bool(own_record)) for item_id, own_record in connection.execute(query).all()]


def annotation_records(connection: Connection, file_id: int) -> list[AnnotationRecord]:
    """The file's working annotations in file order, as much of a record as an update matches
    (its id, its image's id in the file, its hash) and the `row_id` the rest is read from."""
    annotations, links = schema.annotations, schema.file_images
    query = (
        select(annotations.c.row_id, annotations.c.coco_id, links.c.coco_id, annotations.c.hash)
        .join(links, (links.c.file_id == file_id) & (links.c.item_id == annotations.c.item_id) & links.c.rev_to.is_(None))
        .where(annotations.c.file_id == file_id, annotations.c.rev_to.is_(None))
        .order_by(annotations.c.position)
    )
    return [
        {"row_id": row_id, "coco_id": coco_id, "image_id": image_id, "hash": digest}  # type: ignore[typeddict-unknown-key]
        for row_id, coco_id, image_id, digest in connection.execute(query).all()
    ]


def png_digests(connection: Connection, file_id: int) -> dict[str, str | None]:
    """The SHA-256 of each PNG of the file as last read, by PNG name (None: not known)."""
    records = schema.panoptic_records
    query = select(records.c.png_name, records.c.png_sha256).where(
        records.c.file_id == file_id, records.c.rev_to.is_(None)
    )
    return {name: digest for name, digest in connection.execute(query)}


def kept_pngs(connection: Connection, file_id: int) -> dict[str, KeptPng]:
    """The file's kept PNGs whose stored segments are those cut from them, by PNG name."""
    records, items, annotations = schema.panoptic_records, schema.items, schema.annotations
    rows = connection.execute(
        select(records.c.item_id, records.c.png_name, records.c.png_sha256, records.c.png_segments_hash,
               items.c.width, items.c.height)
        .join(items, (items.c.id == records.c.item_id) & items.c.rev_to.is_(None))
        .where(records.c.file_id == file_id, records.c.rev_to.is_(None))
    ).all()
    masks: dict[int, dict[int, bytes]] = {}
    segments = select(annotations.c.item_id, annotations.c.coco_id, annotations.c.rle).where(
        annotations.c.file_id == file_id, annotations.c.rev_to.is_(None)
    )
    for item_id, coco_id, rle in connection.execute(segments):
        if rle is not None:
            masks.setdefault(item_id, {})[coco_id] = bytes(rle)
    kept = {}
    for row in rows:
        item_masks = masks.get(row.item_id, {})
        if row.png_sha256 and row.png_segments_hash == segments_fingerprint(item_masks.items()):
            kept[row.png_name] = KeptPng(row.png_sha256, row.width, row.height, item_masks)
    return kept
