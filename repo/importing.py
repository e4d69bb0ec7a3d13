"""Importing a COCO dataset as a source, or updating a source from a newer copy.

Each annotation file is parsed and validated on its own (memory holds one file), its panoptic
PNGs are cut into per-segment masks, its images are looked up on disk, and its rows are
written in bulk. The whole import (or update) is one transaction: any error rolls it back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from repo._internal.parallel import Workers
from repo.coco.layout import AnnotationFile, discover
from repo.coco.panoptic import DecodeJob, decode_job
from repo.coco.reader import read_task_file
from repo.coco.writer import image_record_object
from repo.errors import ConflictError, InputError
from repo.labels import LabelMap, apply_label_map
from repo.model.hashing import segment_hash
from repo.model.policy import ErrorPolicy
from repo.model.records import RLE_STRING, TaskFile
from repo.progress import Progress, Silent
from repo.project import Project
from repo.store import schema
from repo.store.positions import fresh_positions
from repo.store.source_writer import ChangeCounts, ImageRef, SourceWriter
from repo.store.sources import auto_name, find_source, insert_source, move_source
from repo.store.versions import VersionWriter


@dataclass
class ImportResult:
    source: str
    files: list[str] = field(default_factory=list)
    images: int = 0
    annotations: int = 0
    missing_images: int = 0
    skipped: list[InputError] = field(default_factory=list)
    changes: ChangeCounts = field(default_factory=ChangeCounts)


def write_error_report(path: Path, skipped: list[InputError]) -> None:
    """The records `--on-error skip` left out, one JSON object each."""
    records = [
        {"file": error.file, "record": error.record, "field": error.field, "problem": error.problem}
        for error in skipped
    ]
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def import_dataset(
    project: Project,
    format_name: str,
    path: Path,
    *,
    name: str | None = None,
    relpath: str | None = None,
    on_error: str = "fail",
    copy_images: bool = False,
    label_map: LabelMap | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import the dataset at `path` (in `format_name`) as a new source named `name`."""
    annotation_files = discover(format_name, path, relpath)
    with project.writing() as connection:
        versions = VersionWriter.begin(connection)
        if name is None:
            name = auto_name(connection, Path(relpath or path.resolve().name).stem or "source")
        options = {key: value for key, value in (("relpath", relpath), ("label_map", label_map)) if value} or None
        root = str(annotation_files[0].root.resolve())
        try:
            source_id = insert_source(versions, name, format_name, root, options)
        except IntegrityError:
            raise ConflictError(f"a source named '{name}' already exists; choose another name with -n") from None
        writer = SourceWriter(versions, source_id, new_source=True, image_object=image_record_object)
        result = _write_files(connection, writer, name, annotation_files, on_error, copy_images, label_map, progress)
    project.refresh_statistics()
    return result


def update_source(
    project: Project,
    name: str,
    path: Path,
    *,
    on_error: str = "fail",
    copy_images: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Bring source `name` in line with a newer copy of its files; only differences are stored.

    The label map given at import applies again."""
    with project.writing() as connection:
        versions = VersionWriter.begin(connection)
        source = find_source(connection, name)
        options = source.options or {}
        annotation_files = discover(source.format, path, options.get("relpath"))
        source_id = move_source(versions, source, str(annotation_files[0].root.resolve()))
        writer = SourceWriter(versions, source_id, new_source=False, image_object=image_record_object)
        result = _write_files(
            connection, writer, name, annotation_files, on_error, copy_images, options.get("label_map"), progress
        )
    project.refresh_statistics()
    return result


def _write_files(
    connection: Connection, writer: SourceWriter, name: str, annotation_files: list[AnnotationFile],
    on_error: str, copy_images: bool, label_map: LabelMap | None, progress: Progress | None,
) -> ImportResult:
    progress = progress or Silent()
    policy = ErrorPolicy(skip=on_error == "skip")
    finder = _ImageFinder(connection, copy_images, progress)
    result = ImportResult(source=name)
    seen_items: set[tuple[str, str]] = set()
    positions = fresh_positions(len(annotation_files))
    for position, annotation_file, task_file in zip(positions, annotation_files, _read(annotation_files, policy, progress)):
        if label_map:
            apply_label_map(task_file, label_map)
        refs = finder.locate(annotation_file, task_file)
        writer.write_file(task_file, position, refs)
        result.files.append(annotation_file.shown_as)
        for image in task_file.images:
            key = (task_file.subset, image["file_name"])
            if key not in seen_items:
                seen_items.add(key)
                result.missing_images += image["file_name"] not in refs
        result.annotations += len(task_file.annotations) + sum(len(r.segments) for r in task_file.panoptic)
    result.images = len(seen_items)
    result.skipped = policy.skipped
    result.changes = writer.finish()
    progress.finish()
    return result


def _read(annotation_files: list[AnnotationFile], policy: ErrorPolicy, progress: Progress) -> Iterator[TaskFile]:
    """Validated task files, one at a time, panoptic masks cut from their PNGs."""
    for annotation_file in annotation_files:
        progress.start(f"reading {annotation_file.path.name}", 1)
        task_file = read_task_file(
            annotation_file.path, annotation_file.shown_as, annotation_file.task, annotation_file.subset, policy
        )
        progress.advance()
        if task_file.task == "panoptic":
            _cut_panoptic(annotation_file, task_file, policy, progress)
        yield task_file


def _cut_panoptic(
    annotation_file: AnnotationFile, task_file: TaskFile, policy: ErrorPolicy, progress: Progress
) -> None:
    """Decode each record's PNG into per-segment masks, on all cores; a bad PNG fails the
    import, or under `skip` drops its record."""
    images = {image["coco_id"]: image for image in task_file.images}
    shown_dir = annotation_file.shown_as.removesuffix(".json")
    jobs = [
        DecodeJob(
            str(annotation_file.png_dir / record.png_name), f"{shown_dir}/{record.png_name}", record.image_id,
            images[record.image_id]["width"], images[record.image_id]["height"],
            tuple(segment["coco_id"] for segment in record.segments),
        )
        for record in task_file.panoptic
    ]
    progress.start(f"decoding {annotation_file.png_dir.name}/", len(jobs))
    kept = []
    with Workers(len(jobs)) as workers:
        for record, outcome in zip(task_file.panoptic, workers.map(decode_job, jobs)):
            progress.advance()
            if isinstance(outcome, tuple):
                policy.report(InputError(*outcome))
                continue
            for segment, rle in zip(record.segments, outcome):
                segment["rle"] = rle
                segment["rle_form"] = RLE_STRING
                # A segment is its JSON record and its pixels: both make its content hash.
                segment["hash"] = segment_hash(segment["hash"], rle)
            kept.append(record)
    task_file.panoptic = kept


class _ImageFinder:
    """Finds each item's image file, hashes it once, and with `copy_images` stores it once."""

    def __init__(self, connection: Connection, copy_images: bool, progress: Progress):
        self.connection = connection
        self.copy_images = copy_images
        self.progress = progress
        self._found: dict[Path, ImageRef | None] = {}

    def locate(self, annotation_file: AnnotationFile, task_file: TaskFile) -> dict[str, ImageRef]:
        folders = annotation_file.image_dirs()
        refs: dict[str, ImageRef] = {}
        self.progress.start(f"hashing images of {annotation_file.path.name}", len(task_file.images))
        for image in task_file.images:
            for folder in folders:
                ref = self._ref(folder / image["file_name"], annotation_file.root)
                if ref is not None:
                    refs[image["file_name"]] = ref
                    break
            self.progress.advance()
        return refs

    def _ref(self, candidate: Path, root: Path) -> ImageRef | None:
        if candidate not in self._found:
            ref = None
            if candidate.is_file():
                data = candidate.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                shown = candidate.relative_to(root) if candidate.is_relative_to(root) else candidate
                ref = ImageRef(shown.as_posix(), len(data), digest)
                if self.copy_images:
                    self._store_blob(digest, data)
            self._found[candidate] = ref
        return self._found[candidate]

    def _store_blob(self, digest: str, data: bytes) -> None:
        blobs = schema.blobs
        exists = self.connection.execute(select(blobs.c.sha256).where(blobs.c.sha256 == digest)).first()
        if exists is None:
            self.connection.execute(insert(blobs).values(sha256=digest, size=len(data), data=data))
