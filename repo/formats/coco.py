"""COCO, as eight formats: `coco` (a folder with any of the tasks) and `coco_<task>` (one task).

The wire format itself is `repo.coco` (layout, reading and validating, writing, RLE, panoptic
PNGs); this module connects it to the store through the registry.

Import: every annotation file is read and validated on its own (memory holds one file, or one
window of a file above 1 MB), and a panoptic file's PNGs are cut into per-segment masks on all
cores (repo.formats.coco_pngs).

Export: each output file `annotations/<task>_<subset>.json` is composed from the stored files
of that task and subset (see `repo._internal.compose`): one source's file comes back exactly as
it was imported, several sources' files as their union. A panoptic PNG whose segments are
those it was imported with (same fingerprint) is written as it was imported; any other is
painted again from the stored segments, and so is every one with `--regenerate-png` or
DSREPO_REGENERATE_PNG=1. Annotation rows stream from the database into the JSON writer, so memory
holds one file's images, not its annotations.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row

from repo._internal.compose import (
    ComposedFile,
    Contributor,
    ImageFile,
    annotations,
    compose,
    id_maps,
    panoptic_record_count,
    panoptic_records,
)
from repo._internal.heap import keep_freed_memory
from repo._internal.parallel import Workers
from repo.coco.layout import AnnotationFile, annotation_path, discover
from repo.coco.meta import DatasetMeta, check_categories, find_meta, read_meta
from repo.coco.reader import read_task_file
from repo.coco.tasks import FORMAT_TASKS, LABELLED_TASKS, file_name_for
from repo.coco.writer import panoptic_object, write_task_file
from repo.errors import ConfigError, ConflictError
from repo.exporting import copy_image
from repo.formats import coco_images, coco_options
from repo.formats.coco_images import planned_images, save_planned
from repo.formats.coco_options import Rewrite, chosen_files, nothing_to_write, write_dataset_meta
from repo.formats.coco_pngs import PngCutter, image_sizes
from repo.formats.registry import (
    DatasetReader,
    ExportContext,
    ExportResult,
    Format,
    ImportRequest,
    PreviousImport,
    ReadFile,
    UnchangedFile,
    boolean,
    flag,
    path,
    register,
)
from repo.model.hashing import segments_fingerprint
from repo.model.policy import ErrorPolicy
from repo.model.records import FilePart, TaskFile
from repo.model.windows import LastWindows
from repo.progress import Progress
from repo.store import fetch, schema
from repo.store.blobs import blob_datas
from repo.store.file_digests import file_sha256
from repo.transforms.attributes import without_attributes

if TYPE_CHECKING:
    from repo.coco.panoptic import KeptJob, PaintJob

# repo.coco.panoptic (Pillow, ISA-L) and repo.formats.coco_derive are imported where they are
# used: an export that paints no panoptic PNG, or derives no task, does not load them.

PAINT_BATCH = 128  # panoptic records whose segments are held in memory at once

IMPORT_OPTIONS = (
    flag("copy_images", "--copy-images", help="Store the image files in the database."),
    *coco_options.IMPORT_OPTIONS,
)
EXPORT_OPTIONS = (
    flag("save_images", "--save-images", "--save-media", help="Also write the images, to images/<subset>/."),
    boolean("reindex", "--reindex", help="New ids 1..N for images, annotations and categories."),
    path("reindex_map", "--reindex-map", requires="reindex",
         help="With --reindex, write the old -> new ids to this JSON file."),
    *coco_options.EXPORT_OPTIONS,
    *coco_images.EXPORT_OPTIONS,
    flag("regenerate_png", "--regenerate-png",
         help="Paint and encode every panoptic PNG again, also those whose segments did not change."),
)
PNG_FORMATS = ("coco", "coco_panoptic")  # the formats with --regenerate-png
REGENERATE_PNG_VARIABLE = "DSREPO_REGENERATE_PNG"


# -- import --------------------------------------------------------------------------------

class CocoReader:
    """The annotation files of a COCO dataset, found; read one at a time."""

    def __init__(self, request: ImportRequest):
        self.format = request.format
        self.files = discover(request.format, request.path, request.relpath, request.options.get("subset"))
        self.root = self.files[0].root
        self.store_images = bool(request.options["copy_images"])

    def read(
        self, policy: ErrorPolicy, progress: Progress, previous: PreviousImport | None = None
    ) -> Iterator[ReadFile | UnchangedFile]:
        """Validated task files, panoptic masks cut from their PNGs. In an update (`previous`),
        a file whose bytes and PNGs are those last read is not read, and a PNG whose bytes
        are those last read is not decoded again. Each file is yielded as a temporary, so
        that its records are gone (the consumer drops them too) before the next is read."""
        metas: dict[Path, tuple[DatasetMeta, str] | None] = {}
        for annotation_file in self.files:
            path = annotation_file.path
            digest = previous.digests.file_sha256(str(path)) if previous is not None else file_sha256(path)
            if previous is not None and _unchanged(annotation_file, digest, previous):
                yield UnchangedFile(annotation_file.task, annotation_file.subset, annotation_file.shown_as)
            else:
                yield _read_file(annotation_file, digest, policy, progress, previous, metas)


def _read_file(
    annotation_file: AnnotationFile, digest: str | None, policy: ErrorPolicy, progress: Progress,
    previous: PreviousImport | None, metas: dict[Path, tuple[DatasetMeta, str] | None],
) -> ReadFile:
    """One annotation file read, validated and (panoptic) cut from its PNGs; a file read in
    parts has each part's PNGs cut as the part is taken."""
    progress.start(f"reading {annotation_file.path.name}", 1)
    task, subset = annotation_file.task, annotation_file.subset
    last = previous.last_windows(task, subset) if previous is not None and task != "panoptic" else None
    task_file = read_task_file(annotation_file.path, annotation_file.shown_as, task, subset, policy, last)
    task_file.sha256 = digest
    _check_meta(annotation_file, task_file, metas)
    progress.advance()
    notes: list[str] = []
    if last is not None and task_file.parts is not None:
        task_file.parts = _noting_taken_windows(task_file.parts, last, notes, annotation_file.shown_as)
    if task_file.task == "panoptic":
        cutter = PngCutter(annotation_file, task_file, policy, progress, previous, notes)
        if task_file.parts is None:
            task_file.panoptic = cutter.cut(task_file.panoptic, image_sizes(task_file.images), len(task_file.panoptic))
            cutter.note()
        else:
            task_file.parts = cutter.cut_parts(task_file.parts)
    return ReadFile(task_file, annotation_file.shown_as, annotation_file.image_dirs(), notes)


def _noting_taken_windows(
    parts: Iterator[FilePart], last: LastWindows, notes: list[str], shown_as: str
) -> Iterator[FilePart]:
    """The parts; once they are all taken, a note of the windows not read again."""
    yield from parts
    if last.taken:
        notes.append(f"{shown_as}: {last.taken} of {last.taken + last.read} windows unchanged, not read again")


def _unchanged(annotation_file: AnnotationFile, digest: str | None, previous: PreviousImport) -> bool:
    """Whether a file, and for panoptic every PNG it names, has the bytes last read."""
    task, subset = annotation_file.task, annotation_file.subset
    if digest is None or not previous.unchanged(task, subset, digest):
        return False
    if task != "panoptic":
        return True
    digests = previous.png_digests(task, subset)
    png_dir = os.fspath(annotation_file.png_dir)
    return all(
        digest is not None and previous.digests.file_sha256(os.path.join(png_dir, name)) == digest
        for name, digest in digests.items()
    )


def _check_meta(
    annotation_file: AnnotationFile, task_file: TaskFile, metas: dict[Path, tuple[DatasetMeta, str] | None]
) -> None:
    """Datumaro would take the labels of a dataset_meta.json at the dataset root instead of the
    file's categories: where the two disagree, the import fails rather than pick one."""
    root = annotation_file.root
    if root not in metas:
        path = find_meta(root)
        metas[root] = (read_meta(path, str(path)), str(path)) if path else None
    found = metas[root]
    if found is not None and task_file.task in LABELLED_TASKS:
        check_categories(found[0], found[1], annotation_file.shown_as, task_file.categories)


def open_reader(request: ImportRequest) -> DatasetReader:
    """The registry's reader: finds the annotation files the format reads (see coco.layout)."""
    return CocoReader(request)


# -- export --------------------------------------------------------------------------------

def write(context: ExportContext) -> ExportResult:
    """Write the format's tasks, one file per task and subset, as the snapshot holds them."""
    from repo.formats.coco_derive import plan_derivations, write_derivation

    tasks = FORMAT_TASKS[context.format]
    regenerate = "panoptic" in tasks and regenerate_png(context.options)
    connection, snapshot, reindex = context.connection, context.snapshot, context.options["reindex"]
    result = ExportResult()
    sources = {row.id: row for row in fetch.source_rows(connection, snapshot)}
    names = {source_id: row.name for source_id, row in sources.items()}
    stored = chosen_files(fetch.file_rows(connection, snapshot), context.options, names)
    wanted = [task for task in tasks if task in (context.options.get("tasks") or tasks)]
    files = [row for row in stored if row.task in wanted]
    explicit = bool(context.options.get("tasks")) or len(tasks) == 1
    derivations = plan_derivations(wanted if explicit else (), stored)
    if not files and not derivations:
        raise nothing_to_write(context.format, wanted, context.options)
    planned = planned_images(context, files + [row for d in derivations for row in d.files])
    rewrite = Rewrite.of(context.options)
    categories: list[dict[str, Any]] = []
    files.sort(key=lambda row: (tasks.index(row.task), row.subset, row.source_id, row.position))
    maps: dict[str, Any] = {}
    listed: set[tuple[str, str]] = set()  # (subset, file_name): an image listed by several files is one image
    copying = context.options["save_images"] and planned is None
    to_copy: dict[tuple[str, str], ImageFile] | None = {} if copying else None
    for (task, subset), group in itertools.groupby(files, key=lambda row: (row.task, row.subset)):
        contributors = [Contributor(row, sources[row.source_id].name) for row in group]
        name = file_name_for(task, subset)
        context.progress.start(f"writing {name}", 1)
        composed = compose(connection, snapshot, name, contributors, reindex)
        if planned is not None:
            planned.rename(composed)
        target = annotation_path(context.out_dir, task, subset)
        target.parent.mkdir(parents=True, exist_ok=True)
        written, pngs = _write_file(context, composed, target, rewrite, regenerate)
        if task in LABELLED_TASKS:
            categories.extend(composed.sections["categories"])
        result.files.append(target)
        result.annotations += written
        result.pngs += pngs
        maps[name] = id_maps(composed)
        _note_images(composed, listed, to_copy)
        del composed  # its images and ids are freed before the next file's are read
    for derivation in derivations:
        composed = write_derivation(context, derivation, names, rewrite, planned, result)
        categories.extend(composed.sections["categories"])
        maps[derivation.name] = id_maps(composed)
        _note_images(composed, listed, to_copy)
    result.images = len(listed)
    if rewrite is not None:
        result.iou_line, result.emptied = rewrite.iou_line(), rewrite.emptied
    if context.options["save_dataset_meta"]:
        result.files.append(write_dataset_meta(context.out_dir, categories))
    if planned is not None:
        save_planned(context, planned, {source_id: row.path for source_id, row in sources.items()}, result)
    elif to_copy is not None:
        _save_images(context, sources, list(to_copy.values()), result)
    if reindex and context.options["reindex_map"]:
        _write_reindex_map(context, context.options["reindex_map"], maps)
    return result


def _note_images(
    composed: ComposedFile, listed: set[tuple[str, str]], to_copy: dict[tuple[str, str], ImageFile] | None
) -> None:
    """Note the file's images as listed; with `to_copy`, also the first listing of each, to
    copy (without, none is held: its hash and path are most of what an image holds)."""
    for image in composed.image_files:
        key = (image.subset, image.file_name)
        if to_copy is not None and key not in listed:
            to_copy[key] = image
        listed.add(key)


def regenerate_png(options: Mapping[str, Any]) -> bool:
    """Whether every panoptic PNG is painted again: `--regenerate-png`, or the environment's
    DSREPO_REGENERATE_PNG=1 (0 or unset: kept PNGs are written as they were)."""
    raw = os.environ.get(REGENERATE_PNG_VARIABLE, "")
    if raw not in ("", "0", "1"):
        raise ConfigError(
            f"{REGENERATE_PNG_VARIABLE} must be 1 (paint every panoptic PNG again) or 0 (write kept PNGs), got '{raw}'"
        )
    return bool(options.get("regenerate_png")) or raw == "1"


def _write_file(
    context: ExportContext, composed: ComposedFile, target: Path, rewrite: Rewrite | None, regenerate: bool
) -> tuple[int, int]:
    """Write one output file; returns its numbers of annotations (panoptic: segments) and PNGs."""
    connection, snapshot, selected = context.connection, context.snapshot, context.selected
    if composed.task != "panoptic":
        records: Iterator[dict[str, Any]] = annotations(
            connection, snapshot, composed, selected, rewrite.rows if rewrite else None
        )
        if not context.options["allow_attributes"]:
            records = map(without_attributes, records)
        _, written = write_task_file(target, composed.layout, composed.sections, _handed_over(composed.images), records)
        return written, 0
    painted = _Painted()
    records = _panoptic_objects(context, composed, target.with_suffix("").name, painted, regenerate)
    if not context.options["allow_attributes"]:
        records = map(without_attributes, records)
    _, pngs = write_task_file(target, composed.layout, composed.sections, _handed_over(composed.images), records)
    return painted.segments, pngs


def _handed_over(images: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The file's image objects, each freed once written: the export does not read them again."""
    images.reverse()
    while images:
        yield images.pop()


@dataclass
class _Painted:
    segments: int = 0


def _panoptic_objects(
    context: ExportContext, composed: ComposedFile, png_folder: str, painted: _Painted, regenerate: bool
) -> Iterator[dict[str, Any]]:
    """Panoptic records in output order; their PNGs are written in batches, on all cores: a
    kept PNG whose segments did not change as it was imported, any other painted again."""
    from repo.coco.panoptic import png_job

    connection, snapshot = context.connection, context.snapshot
    total = panoptic_record_count(connection, snapshot, composed)
    records = panoptic_records(connection, snapshot, composed, context.selected)
    context.progress.start(f"painting {png_folder}/", total)
    keep_freed_memory()  # PNG after PNG frees and allocates the same megabytes
    with Workers(total) as workers:
        while batch := list(itertools.islice(records, PAINT_BATCH)):
            jobs = _png_jobs(context, png_folder, batch, regenerate)
            for (record, segments, placement), overlap in zip(batch, workers.map(png_job, jobs)):
                if overlap is not None:
                    raise ConflictError(
                        f"{composed.name}: image id {placement.coco_id}: segments {overlap[0]} and {overlap[1]} "
                        "cover the same pixel; a panoptic PNG cannot hold both"
                    )
                painted.segments += len(segments)
                context.progress.advance()
                yield panoptic_object(
                    placement.coco_id, record.png_name, record.extra,
                    [composed.segment_object(row, record.file_id) for row in segments],
                )


def _png_jobs(
    context: ExportContext, png_folder: str, batch: list[tuple[Row[Any], list[Row[Any]], Any]], regenerate: bool
) -> list[PaintJob | KeptJob]:
    """A batch's PNGs to write: the kept bytes where the segments have the fingerprint of the
    imported PNG (fetched for this batch only), else a painting."""
    from repo.coco.panoptic import KeptJob, PaintJob

    paintings, kept = [], {}
    folder = context.output_path("annotations", png_folder)
    folder.mkdir(parents=True, exist_ok=True)
    for index, (record, segments, placement) in enumerate(batch):
        target = folder / record.png_name
        if target.parent != folder:  # a name with folders: checked (resolving costs 0.1 ms), folders made
            target = context.output_path("annotations", png_folder, record.png_name)
            target.parent.mkdir(parents=True, exist_ok=True)
        masks = tuple((row.coco_id, bytes(row.rle)) for row in segments)
        paintings.append(PaintJob(str(target), masks, placement.height, placement.width))
        if not regenerate and record.png_sha256 and record.png_segments_hash == segments_fingerprint(masks):
            kept[index] = record.png_sha256
    datas = blob_datas(context.connection, schema.panoptic_pngs, set(kept.values()))
    return [
        KeptJob(job.target, datas[kept[index]]) if kept.get(index) in datas else job
        for index, job in enumerate(paintings)
    ]


def _save_images(
    context: ExportContext, sources: dict[int, Row[Any]], images: list[ImageFile], result: ExportResult
) -> None:
    """Copy each image to images/<subset>/<file_name>, from the database or the source folder."""
    context.progress.start("saving images", len(images))
    for image in images:
        target = context.output_path("images", image.subset, image.file_name)
        source_root = sources[image.source_id].path  # merged sources keep absolute paths
        if copy_image(context.connection, image.sha256, source_root, image.path, target):
            result.saved_images += 1
        else:
            result.unavailable_images.append(f"{image.subset}/{image.file_name}")
        context.progress.advance()


def _write_reindex_map(context: ExportContext, target: Path, maps: dict[str, Any]) -> None:
    document = {
        name: {kind: [{"source": s, "old": old, "new": new} for s, old, new in pairs] for kind, pairs in kinds.items()}
        for name, kinds in maps.items()
    }
    context.reports.write(target, document)


# -- registration --------------------------------------------------------------------------

_HELP = {
    "coco": "COCO: a folder with any of the tasks (annotations/<task>_<subset>.json).",
    "coco_panoptic": "COCO panoptic: JSON and per-image PNGs (annotations/panoptic_<subset>/).",
}

for _name, _tasks in FORMAT_TASKS.items():
    register(Format(
        name=_name,
        help=_HELP.get(_name, f"COCO {_tasks[0]}: a folder, or one JSON file of any name."),
        reader=open_reader,
        writer=write,
        import_options=IMPORT_OPTIONS,
        export_options=tuple(
            option for option in EXPORT_OPTIONS
            if (option.name != "tasks" or _name == "coco") and (option.name != "regenerate_png" or _name in PNG_FORMATS)
        ),
    ))
