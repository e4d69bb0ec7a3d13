"""Exporting a project (or one revision of it) in a registered format, and `convert`.

An export is one read transaction: the revision is resolved, `--where` selects annotations,
the output folder is checked, and the format's writer (see `repo.formats.registry`) writes
the files into a new folder beside it, renamed into place at the end. A failed or killed
export leaves the project and the output folder as they were.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from repo._internal.output import staged_folder
from repo._internal.reports import staged_reports
from repo.errors import OutputError
from repo.formats.registry import ExportContext, ExportResult, get_format
from repo.model.paths import copy_real_file, open_new, real_file
from repo.progress import Progress, Silent
from repo.project import Project
from repo.query import selected_annotations
from repo.store import revisions
from repo.store.blobs import blob_data
from repo.store.user_sql import DEFAULT_TIMEOUT

PathLike = str | os.PathLike[str]


def export_dataset(
    project: Project,
    format_name: str,
    out_dir: PathLike,
    *,
    rev: str | None = None,
    where: str | None = None,
    overwrite: bool = False,
    timeout: float | None = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
    **format_options: Any,
) -> ExportResult:
    """Write the project in `format_name` into `out_dir`, as of revision `rev` (None: the
    working state), keeping only the annotations for which the SQL condition `where` on
    `annotations_v` holds (within `timeout` seconds; None: no limit). `out_dir` must be empty
    or new unless `overwrite`, and is replaced whole only when the export succeeds (see
    `repo._internal.output`). The format's export options come as keywords (e.g.
    `save_images=True`; see `dsrepo formats`)."""
    writer_format = get_format(format_name, role="export")
    options = writer_format.export_settings(format_options)
    progress = progress or Silent()
    out_dir = Path(out_dir)
    try:
        with staged_reports() as reports, project.reading() as connection:
            snapshot = revisions.snapshot(connection, rev)
            selected = selected_annotations(connection, snapshot, where, timeout) if where else None
            with staged_folder(out_dir, overwrite) as staging:
                context = ExportContext(format_name, connection, snapshot, selected, staging, options, progress, reports)
                assert writer_format.writer is not None
                result = writer_format.writer(context)
    except OSError as exc:  # a folder that cannot be written, a full disk, ...
        raise OutputError(f"cannot export to {out_dir}: {exc.filename or out_dir}: {exc.strerror or exc}") from None
    result.files = [out_dir / path.relative_to(staging) for path in result.files]
    progress.finish()
    return result


def copy_image(
    connection: Connection, sha256: str | None, source_root: str | None, image_path: str | None, target: Path
) -> bool:
    """Write an item's image file to `target` (a path from `ExportContext.output_path`): the
    copy stored in the database if there is one, else the file in the source's folder, only
    where it still lies inside that folder (see repo.model.paths). False if neither exists.
    A symlink found at `target` is replaced, never written through."""
    target.parent.mkdir(parents=True, exist_ok=True)
    data = blob_data(connection, sha256) if sha256 is not None else None
    if data is not None:
        with open_new(target) as file:
            file.write(data)
        return True
    origin = _source_file(source_root, image_path)
    if origin is None:
        return False
    copy_real_file(origin, target)
    return True


def _source_file(source_root: str | None, image_path: str | None) -> Path | None:
    """An image's file in its source folder, if it is still there and inside it. Merged
    sources keep their inputs' absolute paths, which must then contain no symlink at all."""
    if image_path is None:
        return None
    if source_root:
        return real_file(Path(source_root, image_path), Path(source_root))
    return real_file(Path(image_path), None)


def convert(
    input_format: str,
    input_path: PathLike,
    output_format: str,
    out_dir: PathLike,
    *,
    overwrite: bool = False,
    import_options: Mapping[str, Any] | None = None,
    export_options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Import a dataset into a temporary project and export it in another format (or the
    same one: a check that it round-trips). The project is deleted afterwards."""
    from repo.importing import import_dataset  # an export alone does not load the import side

    get_format(input_format, role="import").import_settings(import_options or {})  # refuse bad options before
    get_format(output_format, role="export").export_settings(export_options or {})  # any work is done
    with tempfile.TemporaryDirectory(prefix="dsrepo-convert-") as scratch:
        with Project.create(Path(scratch) / "project") as project:
            import_dataset(project, input_format, input_path, progress=progress, **dict(import_options or {}))
            return export_dataset(
                project, output_format, out_dir, overwrite=overwrite, progress=progress, **dict(export_options or {})
            )
