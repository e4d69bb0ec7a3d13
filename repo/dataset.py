"""Reading a project from code: the items of a revision, with their annotations and images.

An `Item` is one stored image of one source (a row of `items_v`): its subset, file name, COCO
id, size and extra fields, its annotations of every task (or of the tasks asked for), and its
image, decoded on demand from the bytes stored in the database or the file recorded at import.
An `Annotation` carries its fields as COCO has them (ids, label, box, area, keypoints with the
category's names and skeleton, caption, polygons or RLE) and decodes its mask on demand.

`read_items` streams: items and annotations come from two cursors ordered by item, merged
here, so memory holds one item at a time whatever the size of the project. A `where`
condition is the one `export --where` takes (SQL on `annotations_v`): it keeps the matching
annotations, and the items that have at least one. `find_items` fetches the items one image
name or COCO id names, for `render` and the web app.

Nothing here writes; images and masks are only decoded when asked for.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as coco_mask
from sqlalchemy import Connection, Row, and_, exists, or_, select

from repo.coco.tasks import TASKS
from repo.coco.writer import annotation_object, segment_object
from repo.errors import InputError, NotFoundError, OptionError
from repo.project import Project
from repo.readonly import selected_rows
from repo.store import fetch, revisions, schema
from repo.store.versions import Snapshot

_INTEGER = re.compile(r"^-?[0-9]{1,19}$")
_a, _c, _f, _fi, _i, _l = (
    schema.annotations, schema.categories, schema.files, schema.file_images, schema.items, schema.labels,
)


@dataclass(frozen=True)
class Annotation:
    """One annotation (or panoptic segment) of an item, with its category's label and keypoint
    metadata. Numbers are as the file had them (48 stays an integer); `row_id` is the
    annotation's `annotations_v.row_id`."""

    task: str
    kind: str  # bbox, polygon, mask, points, caption, label
    source: str
    coco_id: int | None
    label: str | None
    category_id: int | None
    bbox: tuple[float, float, float, float] | None  # x, y, width, height
    area: float | None
    iscrowd: int | None
    score: float | None
    keypoints: tuple[float, ...] | None  # x, y, visibility per point
    num_keypoints: int | None
    keypoint_names: tuple[str, ...] | None
    skeleton: tuple[tuple[int, int], ...] | None  # 1-based point indices, as COCO numbers them
    caption: str | None
    polygons: tuple[tuple[float, ...], ...] | None
    rle: dict[str, Any] | None  # {"size": [height, width], "counts": compressed string}
    attributes: dict[str, Any] | None
    extra: dict[str, Any] | None
    color: tuple[int, int, int] | None  # the category's `color` (panoptic categories), if any
    image_size: tuple[int, int]  # height, width of the item
    row_id: int
    content_hash: bytes = field(repr=False)

    @property
    def has_mask(self) -> bool:
        return self.polygons is not None or self.rle is not None

    def mask(self) -> np.ndarray | None:
        """The pixels of the polygons or RLE, as an HxW bool array (None without either)."""
        height, width = self.image_size
        if self.rle is not None:
            encoded = dict(self.rle, counts=self.rle["counts"].encode("ascii"))
            return coco_mask.decode(encoded).astype(bool)
        if self.polygons is not None:
            rings = [list(ring) for ring in self.polygons]
            if not rings:
                return np.zeros((height, width), dtype=bool)
            merged = coco_mask.merge(coco_mask.frPyObjects(rings, height, width))
            return coco_mask.decode(merged).astype(bool)
        return None


@dataclass(frozen=True)
class Item:
    """One stored image of one source, with its annotations in task order, then file order."""

    source: str
    subset: str
    file_name: str
    coco_id: int
    width: int
    height: int
    extra: dict[str, Any] | None  # license, coco_url, date_captured, any other key
    annotations: tuple[Annotation, ...]
    image_file: Path | None  # where the image was found at import; None: it was not found
    image_sha256: str | None
    row_id: int  # items_v.item_id is the item's lineage; this is the version read
    content_hash: bytes = field(repr=False)
    _stored: Callable[[str], bytes | None] | None = field(default=None, repr=False, compare=False)

    def image_bytes(self) -> bytes | None:
        """The image file's bytes: stored in the database, else read from `image_file`."""
        if self.image_sha256 is not None and self._stored is not None:
            data = self._stored(self.image_sha256)
            if data is not None:
                return data
        if self.image_file is not None and self.image_file.is_file():
            return self.image_file.read_bytes()
        return None

    def image(self) -> np.ndarray | None:
        """The image as an HxWx3 uint8 RGB array; None when neither stored nor on disk.

        A file that cannot be decoded raises InputError. The pixels are as stored: no EXIF
        rotation, since COCO's width and height describe the stored pixels.
        """
        data = self.image_bytes()
        if data is None:
            return None
        try:
            with Image.open(io.BytesIO(data)) as image:
                return np.asarray(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            shown = str(self.image_file) if self.image_file else f"{self.subset}/{self.file_name}"
            raise InputError(shown, f"image '{self.file_name}'", None, f"cannot be decoded ({exc})") from None


@dataclass(frozen=True)
class _Category:
    label: str | None
    keypoint_names: tuple[str, ...] | None
    skeleton: tuple[tuple[int, int], ...] | None
    color: tuple[int, int, int] | None


class _Reader:
    """What every read needs once per snapshot: sources, files, categories, the selection."""

    def __init__(
        self, project: Project, connection: Connection, snapshot: Snapshot,
        tasks: Sequence[str] | None, where: str | None,
    ):
        self.project, self.connection, self.snapshot = project, connection, snapshot
        self.tasks = _checked_tasks(tasks)
        self.selected = selected_rows(connection, snapshot, where) if where else None
        sources = fetch.source_rows(connection, snapshot)
        self.source_names = {row.id: row.name for row in sources}
        self.source_roots = {row.id: row.path for row in sources}
        self.file_tasks = {row.id: row.task for row in fetch.file_rows(connection, snapshot)}
        self.categories = _categories(connection, snapshot)

    # -- queries -------------------------------------------------------------------------

    def item_query(self) -> Any:
        visible = self.snapshot.visible
        query = select(_i).where(visible(_i), _i.c.source_id.in_(list(self.source_names)))
        if self.tasks is not None:
            listed = (
                select(_fi.c.item_id)
                .join(_f, and_(_f.c.id == _fi.c.file_id, visible(_f)))
                .where(_fi.c.item_id == _i.c.id, visible(_fi), _f.c.task.in_(self.tasks))
            )
            query = query.where(exists(listed))
        return query

    def annotation_query(self) -> Any:
        query = select(_a).where(self.snapshot.visible(_a))
        if self.tasks is not None:
            files = [file_id for file_id, task in self.file_tasks.items() if task in self.tasks]
            query = query.where(_a.c.file_id.in_(files))
        return query

    # -- building ------------------------------------------------------------------------

    def item(self, row: Row[Any], annotation_rows: Iterable[Row[Any]], keep_empty: bool = False) -> Item | None:
        """The Item of a stored row; None when a selection leaves it no annotation, unless
        `keep_empty`."""
        rows = [r for r in annotation_rows if r.file_id in self.file_tasks]
        if self.selected is not None:
            rows = [r for r in rows if r.row_id in self.selected]
            if not rows and not keep_empty:
                return None
        rows.sort(key=lambda r: (TASKS.index(self.file_tasks[r.file_id]), r.file_id, r.position))
        source = self.source_names[row.source_id]
        annotations = tuple(self._annotation(r, row, source) for r in rows)
        root = self.source_roots.get(row.source_id)
        image_file = Path(root or "", row.image_path) if row.image_path else None
        return Item(
            source=source, subset=row.subset, file_name=row.file_name, coco_id=row.coco_id, width=row.width,
            height=row.height, extra=row.extra, annotations=annotations, image_file=image_file,
            image_sha256=row.image_sha256, row_id=row.row_id, content_hash=bytes(row.hash),
            _stored=functools.partial(_stored_image, self.project),
        )

    def _annotation(self, row: Row[Any], item: Row[Any], source: str) -> Annotation:
        task = self.file_tasks[row.file_id]
        values = dict(row._mapping, polygons=None, rle=None)  # the COCO fields but the mask, read below as stored
        obj = segment_object(values) if task == "panoptic" else annotation_object(values, item.coco_id, item.height, item.width)
        category = self.categories.get((row.file_id, row.category_id)) if row.category_id is not None else None
        bbox = obj.get("bbox")
        rle = None
        if row.rle is not None:
            rle = {"size": [item.height, item.width], "counts": bytes(row.rle).decode("ascii")}
        return Annotation(
            task=task, kind=row.kind, source=source, coco_id=row.coco_id,
            label=category.label if category else None, category_id=row.category_id,
            bbox=tuple(bbox) if bbox is not None else None, area=obj.get("area"), iscrowd=row.iscrowd,
            score=obj.get("score"), keypoints=tuple(row.keypoints) if row.keypoints is not None else None,
            num_keypoints=row.num_keypoints, keypoint_names=category.keypoint_names if category else None,
            skeleton=category.skeleton if category else None,
            caption=obj.get("caption") if task == "captions" else None,
            polygons=tuple(tuple(ring) for ring in row.polygons) if row.polygons is not None else None,
            rle=rle, attributes=row.attributes, extra=row.extra, color=category.color if category else None,
            image_size=(item.height, item.width), row_id=row.row_id, content_hash=bytes(row.hash),
        )



def _stored_image(project: Project, sha256: str) -> bytes | None:
    """An image's stored bytes, read in a transaction of its own, so that an item can load
    its image long after the read that made it has ended."""
    blobs = schema.blobs
    with project.reading() as connection:
        return connection.execute(select(blobs.c.data).where(blobs.c.sha256 == sha256)).scalar()


def _checked_tasks(tasks: Sequence[str] | None) -> tuple[str, ...] | None:
    if tasks is None:
        return None
    unknown = [task for task in tasks if task not in TASKS]
    if unknown:
        raise OptionError(f"unknown task '{unknown[0]}' (known tasks: {', '.join(TASKS)})")
    return tuple(tasks)


def _categories(connection: Connection, snapshot: Snapshot) -> dict[tuple[int, int], _Category]:
    """(file id, category id) -> label and keypoint metadata, for every file of the snapshot."""
    query = (
        select(_c.c.file_id, _c.c.coco_id, _c.c.extra, _l.c.name)
        .outerjoin(_l, and_(_l.c.id == _c.c.label_id, snapshot.visible(_l)))
        .where(snapshot.visible(_c))
    )
    categories = {}
    for file_id, coco_id, extra, label in connection.execute(query):
        extra = extra or {}
        categories[(file_id, coco_id)] = _Category(
            label, _names(extra.get("keypoints")), _skeleton(extra.get("skeleton")), _color(extra.get("color"))
        )
    return categories


def _names(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return tuple(value)
    return None


def _skeleton(value: Any) -> tuple[tuple[int, int], ...] | None:
    if not isinstance(value, list):
        return None
    edges = [
        (edge[0], edge[1]) for edge in value
        if isinstance(edge, list) and len(edge) == 2 and all(type(end) is int for end in edge)
    ]
    return tuple(edges)


def _color(value: Any) -> tuple[int, int, int] | None:
    if isinstance(value, list) and len(value) == 3 and all(type(c) is int and 0 <= c <= 255 for c in value):
        return (value[0], value[1], value[2])
    return None


# -- the public readers ------------------------------------------------------------------------

def read_items(
    project: Project, rev: str | None = None, *, where: str | None = None, tasks: Sequence[str] | None = None,
) -> Iterator[Item]:
    """Every item of revision `rev` (None: the working state), in import order.

    `tasks` keeps the items listed by files of those tasks, and their annotations of those
    tasks. `where` (SQL on annotations_v, as `export --where`) keeps the annotations it
    selects and the items that have one. One read transaction lasts as long as the iteration.
    """
    with project.reading() as connection:
        reader = _Reader(project, connection, revisions.snapshot(connection, rev), tasks, where)
        items = connection.execute(
            reader.item_query().order_by(_i.c.id), execution_options={"stream_results": True, "yield_per": fetch.STREAM_BATCH}
        )
        annotations = connection.execute(
            reader.annotation_query().order_by(_a.c.item_id, _a.c.file_id, _a.c.position),
            execution_options={"stream_results": True, "yield_per": fetch.STREAM_BATCH},
        )
        for row, rows in _merge_by_item(items, annotations):
            item = reader.item(row, rows)
            if item is not None:
                yield item


def _merge_by_item(items: Iterable[Row[Any]], annotations: Iterable[Row[Any]]) -> Iterator[tuple[Row[Any], list[Row[Any]]]]:
    """Pair each item row with its annotation rows; both streams are ordered by item id."""
    pending = iter(annotations)
    current = next(pending, None)
    for item in items:
        while current is not None and current.item_id < item.id:
            current = next(pending, None)  # an annotation of an item the read does not show
        rows = []
        while current is not None and current.item_id == item.id:
            rows.append(current)
            current = next(pending, None)
        yield item, rows


def find_items(
    project: Project, key: str | int, rev: str | None = None, *, subset: str | None = None,
    source: str | None = None, where: str | None = None, tasks: Sequence[str] | None = None,
) -> list[Item]:
    """The items a file name or COCO image id names, optionally narrowed to one subset or
    source. A string is a file name first and, when no item has that name, a COCO id.

    An item named is returned even when `where` selects none of its annotations: the
    condition chooses what it carries, not whether it exists."""
    with project.reading() as connection:
        reader = _Reader(project, connection, revisions.snapshot(connection, rev), tasks, where)
        narrowed = reader.item_query()
        if subset is not None:
            narrowed = narrowed.where(_i.c.subset == subset)
        if source is not None:
            ids = [source_id for source_id, name in reader.source_names.items() if name == source]
            if not ids:
                raise NotFoundError(f"no source named '{source}'")
            narrowed = narrowed.where(_i.c.source_id.in_(ids))
        rows: list[Row[Any]] = []
        if isinstance(key, str):
            rows = list(connection.execute(narrowed.where(_i.c.file_name == key).order_by(_i.c.id)))
        coco_id = key if isinstance(key, int) else int(key) if _INTEGER.match(key) else None
        if not rows and coco_id is not None and -(2**63) <= coco_id < 2**63:
            listed = select(_fi.c.item_id).where(_fi.c.coco_id == coco_id, reader.snapshot.visible(_fi))
            rows = list(connection.execute(
                narrowed.where(or_(_i.c.coco_id == coco_id, _i.c.id.in_(listed))).order_by(_i.c.id)
            ))
        return [
            reader.item(row, connection.execute(reader.annotation_query().where(_a.c.item_id == row.id)), keep_empty=True)
            for row in rows
        ]


def get_item(
    project: Project, key: str | int, rev: str | None = None, *, subset: str | None = None,
    source: str | None = None, where: str | None = None, tasks: Sequence[str] | None = None,
) -> Item:
    """The one item a file name or COCO id names (see `find_items`); an error names the
    candidates when several sources or subsets hold it."""
    items = find_items(project, key, rev, subset=subset, source=source, where=where, tasks=tasks)
    if not items:
        raise NotFoundError(not_found(key, rev))
    if len(items) > 1:
        raise OptionError(f"'{key}' names {len(items)} items ({_listed(items)}); choose one with --source or --subset")
    return items[0]


def not_found(key: str | int, rev: str | None) -> str:
    at = f" at revision {rev}" if rev else ""
    return f"no item has the file name or COCO image id '{key}'{at}"


def _listed(items: Sequence[Item]) -> str:
    return ", ".join(f"{item.source}:{item.subset}/{item.file_name}" for item in items[:5]) + (", ..." if len(items) > 5 else "")


def fingerprint(items: Sequence[Item]) -> str:
    """A digest of everything an overlay of these items shows: the image, each annotation's
    content, label and category metadata. Equal digests draw equal pictures, at any revision."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(repr((item.source, item.subset, item.file_name, item.width, item.height, item.image_sha256,
                            str(item.image_file), _file_state(item.image_file))).encode())
        digest.update(item.content_hash)
        for annotation in item.annotations:
            digest.update(annotation.content_hash)
            digest.update(repr((annotation.task, annotation.label, annotation.color, annotation.skeleton,
                                annotation.keypoint_names)).encode())
    return digest.hexdigest()


def _file_state(path: Path | None) -> tuple[int, int] | None:
    """Size and modification time of an image file: a file replaced on disk draws anew."""
    try:
        status = path.stat() if path is not None else None
    except OSError:
        return None
    return (status.st_size, status.st_mtime_ns) if status else None
