"""Exporting a project (or one revision of it) as COCO files.

Each stored file comes back as `annotations/<task>_<subset>.json` with everything it had, in
its order; panoptic PNGs are painted again from the stored segments. Rows stream from the
database into the JSON writer, so memory holds one file's images, not its annotations.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, and_, select

from repo.coco.layout import annotation_path, output_path
from repo.coco.panoptic import PaintJob, paint_job
from repo.coco.tasks import tasks_of
from repo.coco.writer import (
    annotation_object, category_object, image_object, panoptic_object, segment_object, write_task_file,
)
from repo.errors import ConflictError, DsrepoError
from repo.parallel import Workers
from repo.progress import Progress, Silent
from repo.project import Project
from repo.store import fetch, revisions, schema
from repo.store.versions import Snapshot


PAINT_BATCH = 1024  # panoptic records whose segments are held in memory at once


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    images: int = 0
    annotations: int = 0
    pngs: int = 0


@dataclass(frozen=True)
class _ImageInfo:
    coco_id: int
    height: int
    width: int


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
    *,
    rev: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ExportResult:
    """Write every stored file of the format's tasks into `out_dir`, as of revision `rev`
    (a reference such as HEAD~1 or a tag; None for the working state)."""
    progress = progress or Silent()
    tasks = tasks_of(format_name)
    result = ExportResult()
    with project.reading() as connection:
        snapshot = revisions.snapshot(connection, rev)
        prepare_output(out_dir, overwrite)
        files = [row for row in fetch.file_rows(connection, snapshot) if row.task in tasks]
        files.sort(key=lambda row: (tasks.index(row.task), row.subset, row.source_id, row.position))
        for (task, subset), group in itertools.groupby(files, key=lambda row: (row.task, row.subset)):
            members = list(group)
            if len(members) > 1:
                raise ConflictError(
                    f"{len(members)} sources hold {task}_{subset}.json; exporting a union of sources "
                    "is not supported yet"
                )
            path = annotation_path(out_dir, task, subset)
            path.parent.mkdir(parents=True, exist_ok=True)
            progress.start(f"writing {path.name}", 1)
            images, annotations, pngs = _write_file(connection, snapshot, members[0], path, out_dir, progress)
            result.files.append(path)
            result.images += images
            result.annotations += annotations
            result.pngs += pngs
    progress.finish()
    return result


def _write_file(
    connection: Connection, snapshot: Snapshot, file_row: Row[Any], path: Path, out_dir: Path,
    progress: Progress,
) -> tuple[int, int, int]:
    categories = [category_object(row._mapping) for row in fetch.category_rows(connection, snapshot, file_row.id)]
    images: list[dict[str, Any]] = []
    image_info: dict[int, _ImageInfo] = {}
    for row in fetch.image_rows(connection, snapshot, file_row.id):
        obj = row.record if row.record is not None else image_object(
            row.coco_id, row.file_name, row.width, row.height, row.extra
        )
        images.append(obj)
        image_info[row.item_id] = _ImageInfo(row.coco_id, obj["height"], obj["width"])
    sections = {
        "info": file_row.info, "licenses": file_row.licenses, "categories": categories,
        **(file_row.extra or {}),
    }
    pngs = [0]
    if file_row.task == "panoptic":
        png_dir = path.with_suffix("")
        annotations: Iterator[dict[str, Any]] = _panoptic_objects(
            connection, snapshot, file_row, image_info, png_dir, out_dir, pngs, progress
        )
    else:
        annotations = (
            annotation_object(row._mapping, *_placement(image_info, row.item_id))
            for row in fetch.annotation_rows(connection, snapshot, file_row.id)
        )
    image_count, annotation_count = write_task_file(path, file_row.layout, sections, images, annotations)
    return image_count, annotation_count, pngs[0]


def _placement(image_info: dict[int, _ImageInfo], item_id: int) -> tuple[int, int, int]:
    info = image_info[item_id]
    return info.coco_id, info.height, info.width


def _panoptic_objects(
    connection: Connection, snapshot: Snapshot, file_row: Row[Any], image_info: dict[int, _ImageInfo],
    png_dir: Path, out_dir: Path, pngs: list[int], progress: Progress,
) -> Iterator[dict[str, Any]]:
    """Panoptic records in file order; their PNGs are painted in batches, on all cores."""
    records = list(fetch.panoptic_rows(connection, snapshot, file_row.id))
    progress.start(f"painting {png_dir.name}/", len(records))
    segments = _segments_by_record(connection, snapshot, file_row.id)
    current = next(segments, None)
    with Workers(len(records)) as workers:
        for start in range(0, len(records), PAINT_BATCH):
            jobs, objects = [], []
            for record in records[start:start + PAINT_BATCH]:
                rows: list[Row[Any]] = []
                while current is not None and current.record_position == record.position:
                    rows.append(current)
                    current = next(segments, None)
                info = image_info[record.item_id]
                target = output_path(out_dir, "annotations", png_dir.name, record.png_name)
                target.parent.mkdir(parents=True, exist_ok=True)
                jobs.append(PaintJob(str(target), tuple((row.coco_id, bytes(row.rle)) for row in rows), info.height, info.width))
                objects.append(panoptic_object(
                    info.coco_id, record.png_name, record.extra, [segment_object(row._mapping) for row in rows]
                ))
            for job, obj, overlap in zip(jobs, objects, workers.map(paint_job, jobs)):
                if overlap is not None:
                    raise ConflictError(
                        f"{file_row.name}: image id {obj['image_id']}: segments {overlap[0]} and {overlap[1]} "
                        "cover the same pixel; a panoptic PNG cannot hold both"
                    )
                pngs[0] += 1
                progress.advance()
                yield obj


def _segments_by_record(connection: Connection, snapshot: Snapshot, file_id: int) -> Iterator[Row[Any]]:
    """Segments ordered by their record's place in the file, then by their own."""
    a, pr = schema.annotations, schema.panoptic_records
    query = (
        select(a, pr.c.position.label("record_position"))
        .join(pr, and_(pr.c.file_id == a.c.file_id, pr.c.item_id == a.c.item_id, snapshot.visible(pr)))
        .where(a.c.file_id == file_id, snapshot.visible(a))
        .order_by(pr.c.position, a.c.position)
    )
    return iter(connection.execution_options(stream_results=True, yield_per=fetch.STREAM_BATCH).execute(query))
