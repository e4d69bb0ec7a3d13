"""Importing a dataset, in a registered format, as a new source of a project.

The format's reader (see `repo.formats.registry`) finds the files and reads them one at a
time into validated records; this module writes them as the rows of one source, applies the
label map, finds and hashes each item's image file (and with the format's `copy_images`
stores it once), and writes the `--on-error skip` report. The whole import is one
transaction: any error rolls it back. `repo.sources.update_source` reuses the same steps.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from repo._internal.reports import StagedReports, staged_reports
from repo.coco.writer import image_record_object
from repo.errors import ConflictError, InputError, OptionError
from repo.formats.registry import DatasetReader, ImportRequest, ReadFile, UnchangedFile, get_format
from repo.labels import LabelMap, apply_label_map, load_label_map
from repo.model.paths import FolderFiles, read_real_file
from repo.model.policy import ErrorPolicy
from repo.model.records import FilePart, ImageRecord, PanopticRecord, gather_parts
from repo.progress import Progress, Silent
from repo.project import Project
from repo.store import schema
from repo.store.blobs import held_blobs, store_blob, store_blobs
from repo.store.file_digests import FileDigests
from repo.store.positions import fresh_position
from repo.store.source_writer import ChangeCounts, ImageRef, SourceWriter
from repo.store.sources import auto_name, insert_source
from repo.store.versions import VersionWriter

PathLike = str | os.PathLike[str]
ON_ERROR = ("fail", "skip")
KEEP_BATCH = 256  # panoptic PNGs whose bytes are held at once on their way to the database


@dataclass
class ImportResult:
    """What an import or update read and wrote; `skipped` and `error_report` are set when
    `on_error="skip"` left records out."""

    source: str
    files: list[str] = field(default_factory=list)
    images: int = 0
    annotations: int = 0
    missing_images: int = 0  # images whose file was not found
    outside_images: int = 0  # image files leading out of the dataset folder (symlinks): not used
    skipped: list[InputError] = field(default_factory=list)
    error_report: Path | None = None  # where the skipped records were written
    changes: ChangeCounts = field(default_factory=ChangeCounts)
    notes: list[str] = field(default_factory=list)  # what an update did not read again


def import_dataset(
    project: Project,
    format_name: str,
    path: PathLike,
    *,
    name: str | None = None,
    relpath: str | None = None,
    on_error: str = "fail",
    error_report: PathLike | None = None,
    label_map: PathLike | Mapping[str, str | None] | None = None,
    progress: Progress | None = None,
    **format_options: Any,
) -> ImportResult:
    """Import the dataset at `path` (a folder or a file; `relpath` names one inside it) as a
    new source `name` (default: from the path).

    `on_error="skip"` keeps the good records and writes the bad ones to `error_report`
    (default `PROJECT/import-errors-NAME.json`). `label_map` renames or drops categories: a
    JSON file or a dict `{"old": "new" | None}`. The format's import options come as keywords
    (e.g. `copy_images=True`; see `dsrepo formats`).
    """
    _check_on_error(on_error)
    mapping = load_label_map(label_map) if label_map is not None else None
    reader_format = get_format(format_name, role="import")
    options = reader_format.import_settings(format_options)
    path = Path(path)
    assert reader_format.reader is not None
    reader = reader_format.reader(ImportRequest(format_name, path, relpath, options))
    default_name = Path(relpath or path.resolve().name).stem or "source"
    return import_from_reader(
        project, format_name, reader, str(reader.root.resolve()), name=name, default_name=default_name, relpath=relpath,
        on_error=on_error, error_report=error_report, label_map=mapping, progress=progress,
    )


def import_from_reader(
    project: Project,
    format_name: str,
    reader: DatasetReader,
    origin: str | None,
    *,
    name: str | None,
    default_name: str = "source",
    relpath: str | None = None,
    on_error: str = "fail",
    error_report: PathLike | None = None,
    label_map: LabelMap | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Write what `reader` reads as a new source whose files came from the folder `origin`
    (None: from nowhere on disk), in one transaction: the write path of `import_dataset`,
    shared with `repo.builder` (datasets built from code)."""
    _check_on_error(on_error)
    with staged_reports() as reports, project.writing() as connection:
        versions = VersionWriter.begin(connection)
        if name is None:
            name = auto_name(connection, default_name)
        given = (("relpath", relpath), ("label_map", label_map))
        stored_options = {key: value for key, value in given if value} or None
        try:
            source_id = insert_source(versions, name, format_name, origin, stored_options)
        except IntegrityError:
            raise ConflictError(f"a source named '{name}' already exists; choose another name with -n") from None
        writer = SourceWriter(versions, source_id, new_source=True, image_object=image_record_object)
        result = write_files(connection, writer, name, reader, on_error, label_map, progress)
        report_skipped(project, result, error_report, reports)  # a bad path rolls back; in place after the commit
    project.refresh_statistics()
    return result


def _check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise OptionError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")


def write_files(
    connection: Connection, writer: SourceWriter, name: str, reader: DatasetReader, on_error: str,
    label_map: LabelMap | None, progress: Progress | None,
) -> ImportResult:
    """Read every file of `reader` into the source `writer` writes (an import or an update)."""
    _check_on_error(on_error)
    progress = progress or Silent()
    policy = ErrorPolicy(skip=on_error == "skip")
    finder = _ImageFinder(connection, reader.root, reader.store_images, writer.digests, progress)
    result = ImportResult(source=name)
    seen_items: set[tuple[str, str]] = set()

    def count(subset: str, images: list[ImageRecord], refs: Mapping[str, ImageRef]) -> None:
        for image in images:
            key = (subset, image["file_name"])
            if key not in seen_items:
                seen_items.add(key)
                result.missing_images += image["file_name"] not in refs

    def located(read_file: ReadFile, parts: Iterator[FilePart]) -> Iterator[tuple[FilePart, Mapping[str, ImageRef]]]:
        for part in parts:
            refs = finder.locate(read_file, part.images)
            count(read_file.task_file.subset, part.images, refs)
            keep_pngs(connection, part.panoptic)
            result.annotations += len(part.annotations) + sum(len(record.segments) for record in part.panoptic)
            yield part, refs

    def write(index: int, read_file: ReadFile | UnchangedFile) -> None:
        if isinstance(read_file, UnchangedFile):
            kept = writer.keep_file(read_file.task, read_file.subset, fresh_position(index))
            result.missing_images += sum(not found for key, found in kept.items() if key not in seen_items)
            seen_items.update(kept)
            result.files.append(read_file.shown_as)
            result.notes.append(f"{read_file.shown_as}: unchanged, skipped")
            return
        task_file = read_file.task_file
        if label_map or writer.stores_file(task_file):
            gather_parts(task_file)
        if label_map:
            apply_label_map(task_file, label_map)
        result.files.append(read_file.shown_as)
        if task_file.parts is not None:  # a big file, a window at a time
            writer.write_parts(task_file, fresh_position(index), located(read_file, task_file.parts))
            result.notes.extend(read_file.notes)  # a file read in parts has its notes once read
            return
        result.notes.extend(read_file.notes)
        refs = finder.locate(read_file, task_file.images)
        keep_pngs(connection, task_file.panoptic)
        writer.write_file(task_file, fresh_position(index), refs)
        count(task_file.subset, task_file.images, refs)
        result.annotations += len(task_file.annotations) + sum(len(r.segments) for r in task_file.panoptic)

    for index, read_file in enumerate(reader.read(policy, progress, writer)):
        write(index, read_file)
        del read_file  # its records go before the reader reads the next file: memory holds one file
    result.images = len(seen_items)
    result.outside_images = len(finder.outside)
    result.skipped = policy.skipped
    result.changes = writer.finish()
    progress.finish()
    return result


def report_skipped(
    project: Project, result: ImportResult, error_report: PathLike | None, reports: StagedReports
) -> None:
    """Stage the records `on_error="skip"` left out, one JSON object each, for `error_report`
    (default `PROJECT/import-errors-SOURCE.json`); nothing when none were skipped."""
    if not result.skipped:
        return
    report = Path(error_report) if error_report is not None else project.directory / f"import-errors-{result.source}.json"
    records = [
        {"file": error.file, "record": error.record, "field": error.field, "problem": error.problem}
        for error in result.skipped
    ]
    reports.write(report, records)
    result.error_report = report


def keep_pngs(connection: Connection, panoptic: list[PanopticRecord]) -> None:
    """Store the bytes of the panoptic PNGs the records were cut from (each once, a batch at a
    time), so that an export of unchanged segments writes them as they were. A PNG that
    changed since it was decoded is not kept: its record's PNG is painted at export."""
    records = [record for record in panoptic if record.png_sha256 and record.png_path]
    for start in range(0, len(records), KEEP_BATCH):
        batch = [(record, str(record.png_sha256), Path(str(record.png_path))) for record in records[start:start + KEEP_BATCH]]
        held = held_blobs(connection, schema.panoptic_pngs, {digest for _, digest, _ in batch})
        files: dict[str, bytes] = {}
        for record, digest, path in batch:
            if digest in held or digest in files:
                continue
            try:
                data = read_real_file(path)  # the real path the PNG was decoded from
            except OSError:
                data = b""
            if hashlib.sha256(data).hexdigest() == digest:
                files[digest] = data
            else:
                record.png_sha256 = None
        store_blobs(connection, schema.panoptic_pngs, files)


class _ImageFinder:
    """Finds each item's image file, hashes it once, and if asked stores it once. Paths are
    stored relative to the dataset folder as the user named it.

    A file whose real path leaves the dataset folder (a symlink) is not used: see
    repo.model.paths."""

    def __init__(
        self, connection: Connection, root: Path, store_images: bool, digests: FileDigests, progress: Progress
    ):
        self.connection = connection
        self.root = root
        self.store_images = store_images
        self.digests = digests
        self.progress = progress
        self.outside: set[tuple[str, str]] = set()  # (subset, file_name) found only through symlinks leading out
        self._files = FolderFiles(root)
        self._root_prefix = os.path.join(str(root), "")  # image paths are stored relative to the root
        self._found: dict[str, ImageRef | None] = {}

    def locate(self, read_file: ReadFile, images: list[ImageRecord]) -> dict[str, ImageRef]:
        if not images:  # a part of a big file with annotations only: no progress bar for it
            return {}
        folders = [str(folder) for folder in read_file.image_dirs]
        refs: dict[str, ImageRef] = {}
        self.progress.start(f"hashing images of {Path(read_file.shown_as).name}", len(images))
        for image in images:
            outside = False
            for folder in folders:
                candidate = os.path.normpath(os.path.join(folder, image["file_name"]))
                ref = self._ref(candidate)
                if ref is not None:
                    refs[image["file_name"]] = ref
                    break
                outside = outside or os.path.isfile(candidate)  # there, but through a symlink leading out
            else:
                if outside:
                    self.outside.add((read_file.task_file.subset, image["file_name"]))
            self.progress.advance()
        return refs

    def _ref(self, candidate: str) -> ImageRef | None:
        """The image file's place, size and digest; its bytes are read only to be stored, or
        when its `stat` is not the one its remembered digest was taken with."""
        if candidate not in self._found:
            ref = None
            found = self._files.find(candidate)
            if found is not None:
                real, status = found
                if self.store_images:
                    data = read_real_file(real)
                    digest, size = hashlib.sha256(data).hexdigest(), len(data)
                    store_blob(self.connection, digest, data)
                else:
                    digest, size = self.digests.found_file_sha256(real, status), status.st_size
                ref = ImageRef(candidate.removeprefix(self._root_prefix), size, digest)
            self._found[candidate] = ref
        return self._found[candidate]
