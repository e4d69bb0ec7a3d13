"""Exporting a project (or one revision of it) as COCO files.

Each output file `annotations/<task>_<subset>.json` is composed from the stored files of that
task and subset (see `compose`): one source's file comes back exactly as it was imported,
several sources' files as their union. Panoptic PNGs are painted again from the stored
segments. Annotation rows stream from the database into the JSON writer, so memory holds
one file's images, not its annotations.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, select

from repo._internal.compose import ComposedFile, Contributor, ImageFile, annotations, compose, id_maps, panoptic_records
from repo._internal.parallel import Workers
from repo.coco.layout import annotation_path, output_path
from repo.coco.panoptic import PaintJob, paint_job
from repo.coco.tasks import file_name_for, tasks_of
from repo.coco.writer import panoptic_object, write_task_file
from repo.errors import ConflictError, DsrepoError
from repo.progress import Progress, Silent
from repo.project import Project
from repo.query import selected_annotations
from repo.store import fetch, revisions, schema
from repo.store.versions import Snapshot

PAINT_BATCH = 1024  # panoptic records whose segments are held in memory at once


@dataclass
class ExportOptions:
    rev: str | None = None
    overwrite: bool = False
    save_images: bool = False
    reindex: bool = False
    reindex_map: Path | None = None
    where: str | None = None


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    images: int = 0
    annotations: int = 0
    pngs: int = 0
    saved_images: int = 0
    unavailable_images: list[str] = field(default_factory=list)


def prepare_output(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise DsrepoError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise DsrepoError(f"{out_dir} is not empty; choose an empty folder or pass --overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)


def export_dataset(
    project: Project,
    format_name: str,
    out_dir: Path,
    options: ExportOptions | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Write the format's tasks, as of revision `options.rev` (None: the working state)."""
    options = options or ExportOptions()
    progress = progress or Silent()
    tasks = tasks_of(format_name)
    result = ExportResult()
    with project.reading() as connection:
        snapshot = revisions.snapshot(connection, options.rev)
        selected = selected_annotations(connection, snapshot, options.where) if options.where else None
        prepare_output(out_dir, options.overwrite)
        sources = {row.id: row for row in fetch.source_rows(connection, snapshot)}
        files = [row for row in fetch.file_rows(connection, snapshot) if row.task in tasks]
        files.sort(key=lambda row: (tasks.index(row.task), row.subset, row.source_id, row.position))
        maps: dict[str, Any] = {}
        image_files: dict[tuple[str, str], ImageFile] = {}
        for (task, subset), group in itertools.groupby(files, key=lambda row: (row.task, row.subset)):
            contributors = [Contributor(row, sources[row.source_id].name) for row in group]
            name = file_name_for(task, subset)
            progress.start(f"writing {name}", 1)
            composed = compose(connection, snapshot, name, contributors, options.reindex)
            path = annotation_path(out_dir, task, subset)
            path.parent.mkdir(parents=True, exist_ok=True)
            images, written, pngs = _write(connection, snapshot, composed, path, out_dir, selected, progress)
            result.files.append(path)
            result.images += images
            result.annotations += written
            result.pngs += pngs
            maps[name] = id_maps(composed)
            for image in composed.image_files:
                image_files.setdefault((image.subset, image.file_name), image)
        if options.save_images:
            _save_images(connection, sources, list(image_files.values()), out_dir, result, progress)
    if options.reindex and options.reindex_map:
        _write_reindex_map(options.reindex_map, maps)
    progress.finish()
    return result


def _write(
    connection: Connection, snapshot: Snapshot, composed: ComposedFile, path: Path, out_dir: Path,
    selected: set[int] | None, progress: Progress,
) -> tuple[int, int, int]:
    """Write one output file; returns its numbers of images, annotations (panoptic: segments)
    and PNGs."""
    if composed.task != "panoptic":
        records = annotations(connection, snapshot, composed, selected)
        images, written = write_task_file(path, composed.layout, composed.sections, composed.images, records)
        return images, written, 0
    painted = _Painted()
    panoptic = _panoptic_records(connection, snapshot, composed, path.with_suffix("").name, out_dir, selected, painted, progress)
    images, pngs = write_task_file(path, composed.layout, composed.sections, composed.images, panoptic)
    return images, painted.segments, pngs


@dataclass
class _Painted:
    segments: int = 0


# -- panoptic ------------------------------------------------------------------------------

def _panoptic_records(
    connection: Connection, snapshot: Snapshot, composed: ComposedFile, png_folder: str, out_dir: Path,
    selected: set[int] | None, painted: _Painted, progress: Progress,
) -> Iterator[dict[str, Any]]:
    """Panoptic records in output order; their PNGs are painted in batches, on all cores."""
    pending = list(panoptic_records(connection, snapshot, composed, selected))
    progress.start(f"painting {png_folder}/", len(pending))
    with Workers(len(pending)) as workers:
        for start in range(0, len(pending), PAINT_BATCH):
            batch = pending[start:start + PAINT_BATCH]
            jobs = []
            for record, segments, placement in batch:
                target = output_path(out_dir, "annotations", png_folder, record.png_name)
                target.parent.mkdir(parents=True, exist_ok=True)
                masks = tuple((row.coco_id, bytes(row.rle)) for row in segments)
                jobs.append(PaintJob(str(target), masks, placement.height, placement.width))
            for (record, segments, placement), overlap in zip(batch, workers.map(paint_job, jobs)):
                if overlap is not None:
                    raise ConflictError(
                        f"{composed.name}: image id {placement.coco_id}: segments {overlap[0]} and {overlap[1]} "
                        "cover the same pixel; a panoptic PNG cannot hold both"
                    )
                painted.segments += len(segments)
                progress.advance()
                yield panoptic_object(
                    placement.coco_id, record.png_name, record.extra,
                    [composed.segment_object(row, record.file_id) for row in segments],
                )


# -- images and maps ------------------------------------------------------------------------

def _save_images(
    connection: Connection, sources: dict[int, Row[Any]], images: list[ImageFile], out_dir: Path,
    result: ExportResult, progress: Progress,
) -> None:
    """Copy each image to images/<subset>/<file_name>, from the database or the source folder."""
    progress.start("saving images", len(images))
    blobs = schema.blobs
    for image in images:
        target = output_path(out_dir, "images", image.subset, image.file_name)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = None
        if image.sha256 is not None:
            data = connection.execute(select(blobs.c.data).where(blobs.c.sha256 == image.sha256)).scalar()
        if data is not None:
            target.write_bytes(data)
        else:
            source_root = sources[image.source_id].path or ""  # merged sources keep absolute paths
            origin = Path(source_root, image.path) if image.path else None
            if origin is None or not origin.is_file():
                result.unavailable_images.append(f"{image.subset}/{image.file_name}")
                progress.advance()
                continue
            shutil.copyfile(origin, target)
        result.saved_images += 1
        progress.advance()


def _write_reindex_map(path: Path, maps: dict[str, Any]) -> None:
    document = {
        name: {kind: [{"source": s, "old": old, "new": new} for s, old, new in pairs] for kind, pairs in kinds.items()}
        for name, kinds in maps.items()
    }
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
