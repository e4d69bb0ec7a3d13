"""Importing a COCO dataset as a new source: one file at a time, one transaction in all.

Each annotation file is parsed and validated on its own (memory holds one file), its
panoptic PNGs are cut into per-segment masks, its images are looked up on disk, and its
rows are bulk-inserted. Any error rolls the whole import back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from repo.coco.layout import AnnotationFile, discover
from repo.coco.panoptic import cut_segments, read_id_map
from repo.coco.policy import ErrorPolicy
from repo.coco.reader import read_task_file
from repo.coco.records import TaskFile
from repo.errors import ConflictError, InputError
from repo.progress import Progress, Silent
from repo.project import Project
from repo.store import schema
from repo.store.loader import ImageRef, SourceLoader
from repo.store.schema import POSITION_STEP
from repo.store.sources import add_source, auto_name
from repo.store.versions import Stamp


@dataclass
class ImportResult:
    source: str
    files: list[str] = field(default_factory=list)
    images: int = 0
    annotations: int = 0
    missing_images: int = 0
    skipped: list[InputError] = field(default_factory=list)


def import_dataset(
    project: Project,
    format_name: str,
    path: Path,
    *,
    name: str | None = None,
    relpath: str | None = None,
    on_error: str = "fail",
    copy_images: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Import the dataset at `path` (in `format_name`) as a new source named `name`."""
    progress = progress or Silent()
    annotation_files = discover(format_name, path, relpath)
    policy = ErrorPolicy(skip=on_error == "skip")
    with project.writing() as connection:
        stamp = Stamp.begin(connection)
        if name is None:
            name = auto_name(connection, Path(relpath or path.resolve().name).stem or "source")
        options = {"relpath": relpath} if relpath else None
        try:
            source_id = add_source(stamp, name, format_name, str(path.resolve()), options)
        except IntegrityError:
            raise ConflictError(f"a source named '{name}' already exists; choose another name with -n") from None
        result = ImportResult(source=name)
        loader = SourceLoader(stamp, source_id)
        seen_items: set[tuple[str, str]] = set()
        for position, annotation_file in enumerate(annotation_files):
            progress.start(f"reading {annotation_file.path.name}", 1)
            task_file = read_task_file(
                annotation_file.path, annotation_file.shown_as, annotation_file.task,
                annotation_file.subset, policy,
            )
            if task_file.task == "panoptic":
                _cut_panoptic(annotation_file, task_file, policy, progress)
            refs = _locate_images(connection, annotation_file, task_file, copy_images, progress)
            loader.add_file(task_file, position * POSITION_STEP, refs)
            result.files.append(annotation_file.shown_as)
            for image in task_file.images:
                key = (task_file.subset, image["file_name"])
                if key not in seen_items:
                    seen_items.add(key)
                    result.missing_images += image["file_name"] not in refs
            result.annotations += len(task_file.annotations) + sum(
                len(record.segments) for record in task_file.panoptic
            )
        result.images = len(seen_items)
        result.skipped = policy.skipped
        progress.finish()
    return result


def _cut_panoptic(
    annotation_file: AnnotationFile, task_file: TaskFile, policy: ErrorPolicy, progress: Progress
) -> None:
    """Decode each record's PNG into per-segment masks; a bad PNG drops its record under `skip`."""
    images = {image["coco_id"]: image for image in task_file.images}
    progress.start(f"decoding {annotation_file.path.with_suffix('').name}/", len(task_file.panoptic))
    png_dir = annotation_file.png_dir
    kept = []
    for record in task_file.panoptic:
        image = images[record.image_id]
        png_shown = f"{annotation_file.shown_as.removesuffix('.json')}/{record.png_name}"
        where = f"annotation for image id {record.image_id}"
        try:
            id_map = read_id_map(png_dir / record.png_name, png_shown, where, image["width"], image["height"])
            cut_segments(id_map, record, png_shown)
            kept.append(record)
        except InputError as error:
            policy.report(error)
        progress.advance()
    task_file.panoptic = kept


def _locate_images(
    connection: Connection, annotation_file: AnnotationFile, task_file: TaskFile, copy_images: bool,
    progress: Progress,
) -> dict[str, ImageRef]:
    """Find each image file, hash it, and with `copy_images` store its bytes once."""
    folders = annotation_file.image_dirs()
    refs: dict[str, ImageRef] = {}
    progress.start(f"hashing images of {annotation_file.path.name}", len(task_file.images))
    for image in task_file.images:
        file_name = image["file_name"]
        for folder in folders:
            candidate = folder / file_name
            if candidate.is_file():
                data = candidate.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                relative = candidate.relative_to(annotation_file.root).as_posix() if candidate.is_relative_to(annotation_file.root) else candidate.as_posix()
                refs[file_name] = ImageRef(relative, len(data), digest)
                if copy_images:
                    _store_blob(connection, digest, data)
                break
        progress.advance()
    return refs


def _store_blob(connection: Connection, digest: str, data: bytes) -> None:
    blobs = schema.blobs
    exists = connection.execute(select(blobs.c.sha256).where(blobs.c.sha256 == digest)).first()
    if exists is None:
        connection.execute(insert(blobs).values(sha256=digest, size=len(data), data=data))
