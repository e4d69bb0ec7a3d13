"""Writing freshly read files (validated records) into the tables of one source.

The same code imports a new source and updates an existing one: for each table it matches the
records read from the files against the stored working rows by their logical key, inserts
records that are new, writes a new version of records whose content or place changed, and
closes stored records that are gone. A first import is simply the case where nothing is stored.

The files of a source share its items: an image listed by `instances_val.json` and by
`captions_val.json` is one item of subset `val`; each file keeps its own id for the image and,
if it differs, its own record of it (as the format wrote it: the caller says how). Content
hashes come with the records. Rows are plain dicts inserted in batches with SQLAlchemy
Core; nothing here creates an object per annotation.
"""

from __future__ import annotations

import functools
import os
from collections import namedtuple
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, Table, select

from repo.model.hashing import record_hash
from repo.model.paths import FolderFiles
from repo.model.records import (
    ANNOTATION_FIELDS,
    AnnotationRecord,
    FilePart,
    ImageRecord,
    KeptPng,
    PanopticRecord,
    TaskFile,
)
from repo.model.windows import LastWindows
from repo.store import schema
from repo.store.file_digests import FileDigests
from repo.store.labels import ensure_labels
from repo.store.positions import fresh_position, reuse_positions
from repo.store.previous import annotation_records, file_links, kept_pngs, newest_row, png_digests
from repo.store.versions import VersionWriter, version_values
from repo.store.window_digests import known_windows, remember_windows

# Besides its key, what makes a stored row differ from a freshly read record.
COMPARED: dict[str, tuple[str, ...]] = {
    "files": ("hash", "position"),
    "categories": ("hash", "position", "label_id"),
    "items": ("hash", "image_path", "image_size", "image_sha256"),
    "file_images": ("hash", "position", "coco_id", "record"),
    "annotations": ("hash", "position", "item_id"),
    "panoptic_records": ("hash", "position"),
}
# Stored rows read at a time for the records an update took from them and writes again.
_STORED_FIELDS_BATCH = 1000
# Caches, not content (the kept panoptic PNG and the fingerprint of the segments it paints: an
# export checks one against the other). A stored row with the same content gets them in place,
# not as a new version, so no commit, status or diff reports them.
FILLED_IN_PLACE: dict[str, tuple[str, ...]] = {
    "panoptic_records": ("png_sha256", "png_segments_hash"),
}


@dataclass(frozen=True)
class ImageRef:
    """Where an item's image file was found, relative to the source's root."""

    path: str
    size: int
    sha256: str


@dataclass
class ChangeCounts:
    """Rows added, changed and removed per table by one import or update."""

    added: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str, table: Table, number: int) -> None:
        if number:
            bucket = getattr(self, kind)
            bucket[table.name] = bucket.get(table.name, 0) + number

    @property
    def total(self) -> int:
        return sum(sum(bucket.values()) for bucket in (self.added, self.changed, self.removed))

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


class _StoredItem(NamedTuple):
    """What an update compares of a stored item when it leaves a file unread."""

    key: tuple[str, str]  # subset, file_name
    hash: bytes
    image_path: str | None
    image_sha256: str | None


class SourceWriter:
    """Brings one source's working rows in line with its files, one file at a time."""

    def __init__(
        self, versions: VersionWriter, source_id: int, *, new_source: bool,
        image_object: Callable[[ImageRecord], dict[str, Any]], root: Path | None = None,
    ):
        """`image_object` renders an image record as its file wrote it: stored for a file whose
        record of a shared image differs from the item's. `root` is the folder the files are
        read from (image paths are relative to it)."""
        self.versions = versions
        self.root = root
        self.updating = not new_source
        self.image_object = image_object
        self.source_id = source_id
        self.counts = ChangeCounts()
        self._stored_files: dict[tuple[str, str], Row[Any]] = {}
        self._stored_items: dict[tuple[str, str], Any] = {}  # as `_stored` gives them
        self._items_by_id: dict[int, _StoredItem] = {}  # every stored item, also once written again
        self._links: tuple[int, list[tuple[int, bool]]] = (0, [])  # the last file `unchanged` looked at
        self.digests = FileDigests(versions.connection)  # saved by `finish`
        self._root_files = FolderFiles(root) if root is not None else None
        self._image_digests: dict[str, str | None] = {}  # image file -> its digest now (None: not there)
        if not new_source:
            self._load_source()
        self._items: dict[tuple[str, str], tuple[int, bytes]] = {}  # written this run: id, record hash

    def _load_source(self) -> None:
        files, items = schema.files, schema.items
        connection = self.versions.connection
        for row in connection.execute(select(files).where(files.c.source_id == self.source_id, files.c.rev_to.is_(None))):
            self._stored_files[(row.task, row.subset)] = row
        stored_item = _stored_row(items, ("subset", "file_name"))
        query = select(*(items.c[name] for name in stored_item._fields)).where(
            items.c.source_id == self.source_id, items.c.rev_to.is_(None)
        )
        for row in map(stored_item._make, connection.execute(query).all()):
            self._stored_items[(row.subset, row.file_name)] = row
            self._items_by_id[row.id] = _StoredItem(
                (row.subset, row.file_name), row.hash, row.image_path, row.image_sha256
            )

    # -- one file ---------------------------------------------------------------------------

    def write_file(self, task_file: TaskFile, position: int, image_refs: Mapping[str, ImageRef]) -> None:
        written_before = self.counts.total
        file_id, stored, versioned = self._write_header(task_file, position)
        exists = stored is not None
        item_ids = self._write_images(file_id, task_file.subset, task_file.images, image_refs, exists)
        self._write_annotations(file_id, task_file, item_ids, exists)
        if exists and not versioned:
            self._restamp_file(stored, task_file.sha256, self.counts.total != written_before)
        self._remember_windows(task_file)

    def stores_file(self, task_file: TaskFile) -> bool:
        """Does the source already hold this file (so that an update matches its rows)?"""
        return (task_file.task, task_file.subset) in self._stored_files

    def write_parts(
        self, task_file: TaskFile, position: int, parts: Iterable[tuple[FilePart, Mapping[str, ImageRef]]]
    ) -> None:
        """Write a file the source does not hold yet a part at a time (each with its images'
        refs), its records numbered as `write_file` numbers them."""
        file_id, stored, _ = self._write_header(task_file, position)
        assert stored is None, "a stored file is matched whole: gather its parts first"
        item_ids: dict[int, int] = {}
        images = annotations = records = 0
        for part, image_refs in parts:
            item_ids.update(self._write_images(file_id, task_file.subset, part.images, image_refs, False, images))
            images += len(part.images)
            if part.panoptic:
                annotations += self._write_panoptic(file_id, part.panoptic, item_ids, False, records, annotations)
                records += len(part.panoptic)
                continue
            wanted, complete = _annotation_rows(
                file_id, part.annotations, [item_ids[a["image_id"]] for a in part.annotations],
                [a["coco_id"] for a in part.annotations],
            )
            self._sync(schema.annotations, {}, wanted, first=annotations, complete=complete)
            annotations += len(wanted)
        self._remember_windows(task_file)

    def _remember_windows(self, task_file: TaskFile) -> None:
        if task_file.windows is not None and task_file.sha256 is not None:
            remember_windows(self.versions.connection, task_file.sha256, task_file.windows)

    def _write_header(self, task_file: TaskFile, position: int) -> tuple[int, Row[Any] | None, bool]:
        """The file's row and its categories; returns its id, its stored row if there was one,
        and whether its content changed (a new version of the row)."""
        stored = self._stored_files.pop((task_file.task, task_file.subset), None)
        header = {
            "layout": task_file.layout, "info": task_file.info, "licenses": task_file.licenses,
            "extra": task_file.extra,
        }
        file_row = {
            "source_id": self.source_id, "task": task_file.task, "subset": task_file.subset,
            "name": task_file.name, "position": position, "hash": record_hash(header), **header,
            "content_sha256": task_file.sha256,
        }
        versioned = stored is not None and any(getattr(stored, c) != file_row[c] for c in COMPARED["files"])
        [file_id] = self._sync(
            schema.files, {"file": stored} if stored else {}, [("file", file_row)], positioned=False
        )
        self._write_categories(file_id, task_file, stored is not None)
        return file_id, stored, versioned

    def _restamp_file(self, stored: Row[Any], sha256: str | None, rows_changed: bool) -> None:
        """Keep the file's row the newest of its rows, with the digest of the bytes they came
        from, so that the next update can tell whether they still are what those bytes give.
        A new version of the row, not a change of content: `ChangeCounts` does not count it.
        A row without a digest (from before migration 0006) that is otherwise current gets it
        in place."""
        if not rows_changed and stored.content_sha256 == sha256:
            if stored.rev_from >= newest_row(self.versions.connection, stored.id):
                return
        elif not rows_changed and stored.content_sha256 is None:
            if stored.rev_from >= newest_row(self.versions.connection, stored.id):
                self.versions.fill_in_place(schema.files, [{"row_id": stored.row_id, "content_sha256": sha256}])
                return
        self.versions.replace(schema.files, [stored], [version_values(schema.files, stored, content_sha256=sha256)])

    # -- files an update leaves unread ---------------------------------------------------------

    def unchanged(self, task: str, subset: str, sha256: str) -> bool:
        """Whether a file whose bytes have this digest can be left unread (see repo.store.previous):
        its rows are still those these bytes gave, the items it lists are what reading it would
        make them (written, the same, by a file read before it in this update; or else already
        its own records), and their image files have the sizes stored. (The reader compares a
        panoptic file's PNGs with `png_digests`.)"""
        stored = self._stored_files.get((task, subset))
        if stored is None or stored.content_sha256 != sha256:
            return False
        connection = self.versions.connection
        if newest_row(connection, stored.id) > stored.rev_from:
            return False
        self._links = (stored.id, file_links(connection, stored.id))
        for item_id, own_record in self._links[1]:
            item = self._items_by_id.get(item_id)
            if item is None:
                return False
            written = self._items.get(item.key)
            if written is None and own_record:
                return False  # the file lists the image first now: the item must be its record
            if written is not None and written != (item_id, item.hash):
                return False  # written again, differently, by a file read before
            if item.image_path is not None and not self._image_unchanged(item.image_path, item.image_sha256):
                return False
        return True

    def _image_unchanged(self, image_path: str, image_sha256: str | None) -> bool:
        """Whether an image file still has the stored digest (read again only if its `stat`
        changed, see store.file_digests); each file is looked at once per update, however many
        unchanged files list it."""
        if self._root_files is None:
            return True
        if image_path not in self._image_digests:
            found = self._root_files.find(os.path.join(self._root_files.inside, image_path))
            self._image_digests[image_path] = self.digests.found_file_sha256(*found) if found is not None else None
        return self._image_digests[image_path] == image_sha256

    def png_digests(self, task: str, subset: str) -> Mapping[str, str | None]:
        stored = self._stored_files.get((task, subset))
        return png_digests(self.versions.connection, stored.id) if stored is not None else {}

    def kept_pngs(self, task: str, subset: str) -> Mapping[str, KeptPng]:
        stored = self._stored_files.get((task, subset))
        return kept_pngs(self.versions.connection, stored.id) if stored is not None else {}

    def last_windows(self, task: str, subset: str) -> LastWindows | None:
        """The windows of the file as last read, if its rows are still all and only what they
        gave: no row changed since (as for `unchanged`), and one row per element (an import
        that skipped bad records, or a label map that dropped some, leaves fewer)."""
        stored = self._stored_files.get((task, subset))
        if stored is None or stored.content_sha256 is None:
            return None
        connection = self.versions.connection
        digests = known_windows(connection, stored.content_sha256)
        if digests is None or newest_row(connection, stored.id) > stored.rev_from:
            return None
        elements = sum(count for _, count in digests.windows)

        def load_records() -> list[AnnotationRecord] | None:
            records = annotation_records(connection, stored.id)
            return records if len(records) == elements else None

        return LastWindows(digests, load_records)

    def keep_file(self, task: str, subset: str, position: int) -> dict[tuple[str, str], bool]:
        """Leave an unread file's rows as they are (see `unchanged`); returns the keys of the
        items it lists, which stay, and whether each one's image file was found."""
        stored = self._stored_files.pop((task, subset))
        if stored.position != position:
            self.versions.replace(schema.files, [stored], [version_values(schema.files, stored, position=position)])
        keys = {}
        links = self._links[1] if self._links[0] == stored.id else file_links(self.versions.connection, stored.id)
        for item_id, _ in links:
            item = self._items_by_id[item_id]
            self._stored_items.pop(item.key, None)
            self._items.setdefault(item.key, (item_id, item.hash))
            keys[item.key] = item.image_path is not None
        return keys

    def _stored(self, table: Table, file_id: int, exists: bool, key: Any) -> dict[Hashable, tuple[Any, ...]]:
        """The file's working rows of `table` by `key`: only the columns matching needs (a
        changed file is read again, its other rows are not), fetched at once, as named tuples
        (their fields are read once per row: faster than a Row's)."""
        if not exists:
            return {}
        stored_row = _stored_row(table)
        query = select(*(table.c[name] for name in stored_row._fields)).where(
            table.c.file_id == file_id, table.c.rev_to.is_(None)
        )
        return {key(row): row for row in map(stored_row._make, self.versions.connection.execute(query).all())}

    def _write_categories(self, file_id: int, task_file: TaskFile, exists: bool) -> None:
        label_ids = ensure_labels(self.versions, [c["name"] for c in task_file.categories])
        wanted = [
            (c["coco_id"], {
                "file_id": file_id, "coco_id": c["coco_id"], "name": c["name"],
                "supercategory": c["supercategory"], "label_id": label_ids[c["name"]],
                "extra": c["extra"], "hash": c["hash"],
            })
            for c in task_file.categories
        ]
        stored = self._stored(schema.categories, file_id, exists, lambda row: row.coco_id)
        self._sync(schema.categories, stored, wanted)

    def _write_images(
        self, file_id: int, subset: str, images: list[ImageRecord], image_refs: Mapping[str, ImageRef], exists: bool,
        first: int = 0,
    ) -> dict[int, int]:
        """Items for the file's images (new, changed or shared; `first` of the file's images
        are written already); returns coco id -> item id."""
        fresh = {}
        for image in images:
            key = (subset, image["file_name"])
            if key not in self._items and key not in fresh:
                fresh[key] = self._item_row(subset, image, image_refs.get(image["file_name"]))
        stored = {key: self._stored_items.pop(key) for key in fresh if key in self._stored_items}
        ids = self._sync(schema.items, stored, list(fresh.items()), positioned=False)
        for (key, row), item_id in zip(fresh.items(), ids):
            self._items[key] = (item_id, row["hash"])
        item_ids: dict[int, int] = {}
        wanted = []
        for image in images:
            item_id, item_hash = self._items[(subset, image["file_name"])]
            item_ids[image["coco_id"]] = item_id
            wanted.append((item_id, {
                "file_id": file_id, "item_id": item_id, "coco_id": image["coco_id"], "hash": image["hash"],
                "record": None if image["hash"] == item_hash else self.image_object(image),
            }))
        stored_links = self._stored(schema.file_images, file_id, exists, lambda row: row.item_id)
        self._sync(schema.file_images, stored_links, wanted, first=first)
        return item_ids

    def _item_row(self, subset: str, image: ImageRecord, ref: ImageRef | None) -> dict[str, Any]:
        return {
            "source_id": self.source_id, "subset": subset, "file_name": image["file_name"],
            "coco_id": image["coco_id"], "width": image["width"], "height": image["height"],
            "extra": image["extra"], "hash": image["hash"],
            "image_path": ref.path if ref else None,
            "image_size": ref.size if ref else None,
            "image_sha256": ref.sha256 if ref else None,
        }

    def _write_annotations(self, file_id: int, task_file: TaskFile, item_ids: dict[int, int], exists: bool) -> None:
        if task_file.task == "panoptic":
            self._write_panoptic(file_id, task_file.panoptic, item_ids, exists)
            return
        annotations = task_file.annotations
        wanted, complete = _annotation_rows(
            file_id, annotations, [item_ids[a["image_id"]] for a in annotations], [a["coco_id"] for a in annotations],
            self.versions.connection,
        )
        stored = self._stored(schema.annotations, file_id, exists, lambda row: row.coco_id)
        self._sync(schema.annotations, stored, wanted, complete=complete)

    def _write_panoptic(
        self, file_id: int, panoptic: list[PanopticRecord], item_ids: dict[int, int], exists: bool,
        first_record: int = 0, first_segment: int = 0,
    ) -> int:
        """Write panoptic records and their segments (after `first_record` records and
        `first_segment` segments of the file already written); returns how many segments."""
        records = [
            (item_ids[record.image_id], {
                "file_id": file_id, "item_id": item_ids[record.image_id], "png_name": record.png_name,
                "extra": record.extra, "hash": record.hash,
                "png_sha256": record.png_sha256, "png_segments_hash": record.png_segments_hash,
            })
            for record in panoptic
        ]
        stored_records = self._stored(schema.panoptic_records, file_id, exists, lambda row: row.item_id)
        self._sync(schema.panoptic_records, stored_records, records, first=first_record)
        # A segment id is unique within its PNG only: segments are keyed by (image, id),
        # and ordered by record, then by place in segments_info.
        segments = [segment for record in panoptic for segment in record.segments]
        owners = [item_ids[record.image_id] for record in panoptic for _ in record.segments]
        wanted, complete = _annotation_rows(
            file_id, segments, owners, zip(owners, [segment["coco_id"] for segment in segments])
        )
        stored = self._stored(schema.annotations, file_id, exists, lambda row: (row.item_id, row.coco_id))
        self._sync(schema.annotations, stored, wanted, first=first_segment, complete=complete)
        return len(wanted)

    # -- matching ---------------------------------------------------------------------------

    def _sync(
        self,
        table: Table,
        stored: dict[Hashable, Any],
        wanted: Sequence[tuple[Hashable, dict[str, Any]]],
        positioned: bool = True,
        first: int = 0,
        complete: AnnotationCompletion | None = None,
    ) -> list[int]:
        """Write `wanted` (key, row) over the `stored` rows; returns the records' ids in order.
        `first` records of the file come before `wanted` (written already, none stored). With
        `complete`, a wanted row holds only the columns matching compares, and
        `complete(index, row)` makes the whole row of `wanted[index]`: an update that changed
        a few records of a file builds only their rows."""
        if positioned:
            old = [stored[key].position if key in stored else None for key, _ in wanted]
            positions = reuse_positions(old) if stored else [fresh_position(first + i) for i in range(len(wanted))]
            for (_, row), position in zip(wanted, positions):
                row["position"] = position
        compared, cached = COMPARED[table.name], FILLED_IN_PLACE.get(table.name, ())
        stored_values, wanted_values = attrgetter(*compared), itemgetter(*compared)
        new_rows, versions, closing, ids, refills = [], [], [], [], []
        for index, (key, row) in enumerate(wanted):
            current = stored.pop(key, None)
            if current is None:
                new_rows.append((index, row))
                ids.append(None)
            elif stored_values(current) != wanted_values(row):
                row["id"] = current.id
                versions.append((index, row))
                closing.append(current.row_id)
                ids.append(current.id)
            else:
                ids.append(current.id)
                if cached and any(row[c] is not None and getattr(current, c) != row[c] for c in cached):
                    refills.append({"row_id": current.row_id, **{column: row[column] for column in cached}})
        self.versions.fill_in_place(table, refills)
        if complete is not None:
            complete.prepare(versions, new_rows)
        closing.extend(row.row_id for row in stored.values())
        self.versions.close_rows(table, closing)
        new_ids = iter(self.versions.insert(table, _completed(new_rows, complete)))
        self.versions.insert_versions(table, _completed(versions, complete))
        self.counts.count("added", table, len(new_rows))
        self.counts.count("changed", table, len(versions))
        self.counts.count("removed", table, len(stored))
        return [next(new_ids) if record_id is None else record_id for record_id in ids]

    # -- the end ----------------------------------------------------------------------------

    @property
    def item_count(self) -> int:
        """Items written so far (each once, however many files list it)."""
        return len(self._items)

    def finish(self) -> ChangeCounts:
        """Close the stored files and items that the files no longer have."""
        for stored_file in self._stored_files.values():
            self.versions.close_rows(schema.files, [stored_file.row_id])
            self.counts.count("removed", schema.files, 1)
            for table in (schema.categories, schema.file_images, schema.annotations, schema.panoptic_records):
                self.counts.count("removed", table, self.versions.close(table, table.c.file_id == stored_file.id))
        self.versions.close_rows(schema.items, [row.row_id for row in self._stored_items.values()])
        self.counts.count("removed", schema.items, len(self._stored_items))
        self.digests.save()
        return self.counts


@functools.cache
def _stored_row(table: Table, keys: tuple[str, ...] = ("item_id", "coco_id")) -> type[tuple[Any, ...]]:
    """The named tuple `_stored` gives for `table`'s rows: their ids, keys and compared columns."""
    wanted = ("row_id", "id", *keys, *COMPARED[table.name], *FILLED_IN_PLACE.get(table.name, ()))
    fields = [name for name in dict.fromkeys(wanted) if name in table.c]
    return namedtuple(f"Stored_{table.name}", fields)  # type: ignore[misc]


def _completed(rows: list[tuple[int, dict[str, Any]]], complete: AnnotationCompletion | None) -> Sequence[dict[str, Any]]:
    if complete is None:
        return [row for _, row in rows]
    return _Completing(rows, complete)


class _Completing(Sequence[dict[str, Any]]):
    """The whole rows of matched records, made when sliced: the insert takes them a batch at
    a time, so a file's whole rows (the bulk of an import's memory) are never all held."""

    def __init__(self, rows: list[tuple[int, dict[str, Any]]], complete: AnnotationCompletion):
        self._rows, self._complete = rows, complete

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._complete(place, row) for place, row in self._rows[index]]
        return self._complete(*self._rows[index])


def _annotation_rows(
    file_id: int, records: Sequence[AnnotationRecord], item_ids: Iterable[int], keys: Iterable[Hashable],
    connection: Connection | None = None,
) -> tuple[list[tuple[Hashable, dict[str, Any]]], AnnotationCompletion]:
    """What `_sync` matches of each annotation (its key, item and hash), and how it makes the
    row of one to write (see AnnotationCompletion)."""
    wanted = [
        (key, {"item_id": item_id, "hash": record["hash"]}) for key, record, item_id in zip(keys, records, item_ids)
    ]
    return wanted, AnnotationCompletion(file_id, records, connection)


class AnnotationCompletion:
    """Makes the whole row of a record to write: its fields and the file's id, with what
    matching compared. A record an update took from the stored rows (repo.model.windows; it
    has their `row_id`) gets its fields from its stored row, read by `prepare` before `_sync`
    closes the rows it replaces (a row of the pending revision is deleted then)."""

    def __init__(self, file_id: int, records: Sequence[AnnotationRecord], connection: Connection | None):
        self.file_id, self.records, self.connection = file_id, records, connection
        self._stored_fields: dict[int, dict[str, Any]] = {}

    def prepare(self, *written: list[tuple[int, dict[str, Any]]]) -> None:
        """Read the stored fields of the taken records among those `written` again (moved, or
        their file renumbered): rare, and then a batch at a time. Only a stored file's records
        (given a connection) can have been taken."""
        if self.connection is None:
            return
        indexes = (index for rows in written for index, _ in rows)
        row_ids = [self.records[index]["row_id"] for index in indexes if "row_id" in self.records[index]]  # type: ignore[typeddict-item]
        table = schema.annotations
        for start in range(0, len(row_ids), _STORED_FIELDS_BATCH):
            query = select(table.c.row_id, *(table.c[name] for name in ANNOTATION_FIELDS)).where(
                table.c.row_id.in_(row_ids[start:start + _STORED_FIELDS_BATCH])
            )
            for row in self.connection.execute(query):
                fields = row._asdict()
                self._stored_fields[fields.pop("row_id")] = fields

    def __call__(self, index: int, row: dict[str, Any]) -> dict[str, Any]:
        record: Mapping[str, Any] = self.records[index]
        if "row_id" in record:
            record = self._stored_fields.pop(record["row_id"])
        full = {name: record.get(name) for name in ANNOTATION_FIELDS}
        full["file_id"] = self.file_id
        full.update(row)
        return full
