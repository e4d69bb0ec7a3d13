"""Composing one output file from the stored files of one or more sources.

An output file `<task>_<subset>.json` is made of every stored file of that task and subset,
in source order. With one contributing file and ids kept, it is that file exactly. With
several, it is their union:

- images are the same image when their `file_name` matches (sizes must agree), and keep the
  id of the first source that lists them;
- categories are unified by label: a label keeps the category id of the first source that
  declares it;
- annotations keep their ids;
- info and unknown top-level keys come from the first source; licenses are unioned.

Ids must stay unique in a file (two images, annotations or labels with one id is invalid
COCO): a collision is an error that says to reindex, and reindexing numbers images,
annotations and categories 1..N in output order (panoptic segment ids are never reindexed:
they are pixel values, unique per PNG only).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, Row

from repo.coco.writer import annotation_object, category_object, image_object, segment_object
from repo.errors import ConflictError
from repo.store import fetch
from repo.store.versions import Snapshot

# Rewrites the (row, placement) pairs of one contributing file of the named output file.
RowRewrite = Callable[[Iterable[tuple[Mapping[str, Any], "Placement"]], str], Iterable[tuple[Any, "Placement"]]]

REINDEX_HINT = "use --reindex to assign new ids"


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an item lands in the output file: its image id there, and its size."""

    coco_id: int
    height: int
    width: int


@dataclass(frozen=True, slots=True)
class ImageFile:
    """An image file an export may copy: from the database, or from the source's folder."""

    subset: str
    file_name: str
    sha256: str | None
    size: int | None
    source_id: int
    path: str | None


class Ids:
    """Keeps ids, refusing collisions, or hands out new ones; remembers old -> new."""

    def __init__(self, output: str, what: str, reindex: bool):
        self.output, self.what, self.reindex = output, what, reindex
        self.owner: dict[int, str] = {}
        self.mapping: list[tuple[str, int, int]] = []

    def assign(self, old: int, owner: str, source: str) -> int:
        if self.reindex:
            new = len(self.mapping) + 1
            self.mapping.append((source, old, new))
            return new
        if old in self.owner:
            raise ConflictError(
                f"{self.output}: {self.what} id {old} is used by {self.owner[old]} and by {owner}; {REINDEX_HINT}"
            )
        self.owner[old] = owner
        return old


@dataclass
class Contributor:
    file: Row[Any]
    source: str

    @functools.cached_property
    def owner(self) -> str:
        """Its annotations' owner in an id collision's message: one string for all of them,
        which a file's ids are kept with."""
        return f"source {self.source}"


@dataclass
class ComposedFile:
    """The parts of one output file that fit in memory; annotations are streamed later."""

    name: str
    task: str
    layout: list[str]
    sections: dict[str, Any]
    images: list[dict[str, Any]]
    placements: dict[tuple[int, int], Placement]  # (file id, item id) -> placement
    categories: dict[tuple[int, int], int]  # (file id, stored category id) -> output id
    image_files: list[ImageFile]
    image_ids: Ids
    category_ids: Ids
    annotation_ids: Ids
    contributors: list[Contributor] = field(default_factory=list)
    listed_by: dict[int, tuple[str, ...]] = field(default_factory=dict)  # output image id -> sources

    def segment_object(self, row: Row[Any], file_id: int) -> dict[str, Any]:
        """A stored panoptic segment as a `segments_info` entry of this file: category ids are
        the output file's."""
        obj = segment_object(row._mapping)
        obj["category_id"] = self.categories.get((file_id, row.category_id), row.category_id)
        return obj


def compose(
    connection: Connection, snapshot: Snapshot, name: str, contributors: list[Contributor], reindex: bool
) -> ComposedFile:
    first = contributors[0].file
    composed = ComposedFile(
        name=name, task=first.task, layout=list(first.layout), sections={}, images=[], placements={},
        categories={}, image_files=[], image_ids=Ids(name, "image", reindex),
        category_ids=Ids(name, "category", reindex), annotation_ids=Ids(name, "annotation", reindex),
        contributors=contributors,
    )
    _compose_header(composed, contributors)
    composed.sections["categories"] = _compose_categories(connection, snapshot, composed)
    _compose_images(connection, snapshot, composed)
    if "categories" not in composed.layout and composed.sections["categories"]:
        composed.layout.append("categories")
    return composed


def _compose_header(composed: ComposedFile, contributors: list[Contributor]) -> None:
    first = contributors[0].file
    composed.sections.update(first.extra or {})
    composed.sections["info"] = first.info
    licenses = first.licenses
    if len(contributors) > 1 and isinstance(licenses, list):
        licenses = list(licenses)
        for contributor in contributors[1:]:
            for license in contributor.file.licenses or []:
                if license not in licenses:
                    licenses.append(license)
    composed.sections["licenses"] = licenses
    for contributor in contributors[1:]:
        for key in contributor.file.layout:
            if key not in composed.layout:
                composed.layout.append(key)
                composed.sections.setdefault(key, (contributor.file.extra or {}).get(key))


def _compose_categories(connection: Connection, snapshot: Snapshot, composed: ComposedFile) -> list[dict[str, Any]]:
    categories: list[dict[str, Any]] = []
    by_label: dict[int, int] = {}
    first_file = composed.contributors[0].file.id
    for contributor in composed.contributors:
        for row in fetch.category_rows(connection, snapshot, contributor.file.id):
            key = (contributor.file.id, row.coco_id)
            if contributor.file.id != first_file and row.label_id in by_label:
                composed.categories[key] = by_label[row.label_id]
                continue
            owner = f"label '{row.name}' (source {contributor.source})"
            new_id = composed.category_ids.assign(row.coco_id, owner, contributor.source)
            by_label.setdefault(row.label_id, new_id)
            composed.categories[key] = new_id
            obj = category_object(row._mapping)
            obj["id"] = new_id
            categories.append(obj)
    return categories


def _compose_images(connection: Connection, snapshot: Snapshot, composed: ComposedFile) -> None:
    seen: dict[str, tuple[Placement, str]] = {}  # file_name -> placement, source
    for contributor in composed.contributors:
        file_id, source = contributor.file.id, contributor.source
        listed_by = (source,)  # one tuple for the images this source lists first
        for (item_id, coco_id, record, file_name, width, height, extra, subset, source_id, image_path,
             image_sha256, image_size) in fetch.image_rows(connection, snapshot, file_id):  # unpacked: 118,000 rows
            obj = dict(record) if record is not None else image_object(coco_id, file_name, width, height, extra)
            known = seen.get(file_name)
            if known is not None:
                placement, first = known
                if (placement.height, placement.width) != (obj["height"], obj["width"]):
                    raise ConflictError(
                        f"{composed.name}: image '{file_name}' is {placement.width}x{placement.height} in source "
                        f"{first} but {obj['width']}x{obj['height']} in source {source} (width x height)"
                    )
                composed.placements[(file_id, item_id)] = placement
                composed.listed_by[placement.coco_id] += listed_by
                continue
            new_id = composed.image_ids.assign(coco_id, f"'{file_name}' (source {source})", source)
            obj["id"] = new_id
            placement = Placement(new_id, obj["height"], obj["width"])
            seen[file_name] = (placement, source)
            composed.listed_by[new_id] = listed_by
            composed.placements[(file_id, item_id)] = placement
            composed.images.append(obj)
            composed.image_files.append(ImageFile(subset, file_name, image_sha256, image_size, source_id, image_path))


@dataclass(frozen=True)
class Candidate:
    """A stored annotation on its way into the output file, ids not yet assigned."""

    contributor: Contributor
    row: Any  # the stored Row, or the mapping a rewrite made of it
    obj: dict[str, Any]  # image and category ids already those of the output file


def candidates(
    connection: Connection, snapshot: Snapshot, composed: ComposedFile, selected: set[int] | None,
    rewrite: RowRewrite | None = None, *, for_writer: bool = False,
) -> Iterator[Candidate]:
    """Every stored annotation of the output file (panoptic aside), in output order;
    `rewrite` changes the rows (with their placements) of one contributing file. With
    `for_writer`, the rows hold what the JSON writer needs, polygons, keypoints and attributes
    as the JSON text they are stored as (see `fetch.annotation_rows`)."""
    for contributor in composed.contributors:
        file_id = contributor.file.id
        pairs: Iterable[tuple[Any, Placement]] = (
            (row, composed.placements[(file_id, row.item_id)])
            for row in fetch.annotation_rows(connection, snapshot, file_id, selected, for_writer=for_writer)
        )
        if rewrite is not None:
            pairs = rewrite(((row._mapping, placement) for row, placement in pairs), composed.name)
        for row, placement in pairs:
            mapping = row._mapping if isinstance(row, Row) else row
            obj = annotation_object(mapping, placement.coco_id, placement.height, placement.width)
            if mapping["category_id"] is not None and "category_id" in obj:
                obj["category_id"] = composed.categories.get((file_id, mapping["category_id"]), mapping["category_id"])
            yield Candidate(contributor, row, obj)


def with_output_id(composed: ComposedFile, candidate: Candidate) -> dict[str, Any]:
    """The annotation with its output id: kept (collisions refused) or reindexed."""
    if "id" in candidate.obj:
        contributor = candidate.contributor
        candidate.obj["id"] = composed.annotation_ids.assign(candidate.obj["id"], contributor.owner, contributor.source)
    return candidate.obj


def annotations(
    connection: Connection, snapshot: Snapshot, composed: ComposedFile, selected: set[int] | None,
    rewrite: RowRewrite | None = None,
) -> Iterator[dict[str, Any]]:
    """The output file's annotations (every task but panoptic), streamed in output order, as
    the JSON writer takes them."""
    for candidate in candidates(connection, snapshot, composed, selected, rewrite, for_writer=rewrite is None):
        yield with_output_id(composed, candidate)


def panoptic_records(
    connection: Connection, snapshot: Snapshot, composed: ComposedFile, selected: set[int] | None
) -> Iterator[tuple[Row[Any], list[Row[Any]], Placement]]:
    """(record, segments, placement) per output image, in output order, streamed when one
    file makes the output; records of one image from several sources merge into one, whose
    segment ids must then differ (those are held until the last source is read)."""
    if len(composed.contributors) == 1:
        file_id = composed.contributors[0].file.id
        for record, segments in _records_with_segments(connection, snapshot, file_id):
            yield record, _kept(segments, selected), composed.placements[(file_id, record.item_id)]
        return
    by_image: dict[int, tuple[Row[Any], list[Row[Any]], Placement, str]] = {}
    for contributor in composed.contributors:
        file_id = contributor.file.id
        for record, segments in _records_with_segments(connection, snapshot, file_id):
            placement = composed.placements[(file_id, record.item_id)]
            kept = _kept(segments, selected)
            known = by_image.get(placement.coco_id)
            if known is None:
                by_image[placement.coco_id] = (record, kept, placement, contributor.source)
                continue
            ids = {row.coco_id for row in known[1]}
            for row in kept:
                if row.coco_id in ids:
                    raise ConflictError(
                        f"{composed.name}: image id {placement.coco_id}: segment id {row.coco_id} is in source "
                        f"{known[3]} and in source {contributor.source}; panoptic segment ids are pixel "
                        "values and are never reindexed"
                    )
            known[1].extend(kept)
    for image_id in list(by_image):  # in the order images were first met, each freed once written
        record, segments, placement, _ = by_image.pop(image_id)
        yield record, segments, placement


def panoptic_record_count(connection: Connection, snapshot: Snapshot, composed: ComposedFile) -> int:
    """How many records `panoptic_records` yields, without reading their segments."""
    if len(composed.contributors) == 1:
        return fetch.panoptic_count(connection, snapshot, composed.contributors[0].file.id)
    return len({
        composed.placements[(contributor.file.id, record.item_id)].coco_id
        for contributor in composed.contributors
        for record in fetch.panoptic_rows(connection, snapshot, contributor.file.id)
    })


def _kept(segments: list[Row[Any]], selected: set[int] | None) -> list[Row[Any]]:
    return segments if selected is None else [row for row in segments if row.row_id in selected]


def _records_with_segments(
    connection: Connection, snapshot: Snapshot, file_id: int
) -> Iterator[tuple[Row[Any], list[Row[Any]]]]:
    """Each record of the file with its segments in their order, records in file order (also
    those without segments). Two streams in position order, merged: the writer numbers a
    panoptic file's segments record by record (`source_writer`), so a record's segments are
    the next run of the segments' stream. Each stream scans one index: no join for the
    planner to get wrong on tables it has no statistics for yet, and never the whole file."""
    runs = itertools.groupby(fetch.segment_rows(connection, snapshot, file_id), key=attrgetter("item_id"))
    run = next(runs, None)
    for record in fetch.panoptic_rows(connection, snapshot, file_id):
        if run is not None and run[0] == record.item_id:
            yield record, list(run[1])
            run = next(runs, None)
        else:
            yield record, []
    if run is not None:
        raise RuntimeError(f"file id {file_id}: the segments of item id {run[0]} are out of their records' order")


def id_maps(composed: ComposedFile) -> dict[str, list[tuple[str, int, int]]]:
    """Old -> new ids of a reindexed file, as (source, old id, new id)."""
    return {
        "images": composed.image_ids.mapping,
        "annotations": composed.annotation_ids.mapping,
        "categories": composed.category_ids.mapping,
    }

