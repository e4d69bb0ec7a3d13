"""Sources: the named imports a project is made of. Updating one, removing one.

A source is created by `repo.importing.import_dataset` (or by `merge_sources`, from others).
Its rows live in the store (`repo.store.sources` for the source rows themselves,
`repo.store.source_writer` for its files, items and annotations); each action here is one
transaction and a change like any other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from repo._internal.reports import staged_reports
from repo.coco.writer import image_record_object
from repo.formats.registry import ImportRequest, get_format
from repo.importing import ImportResult, PathLike, report_skipped, write_files
from repo.progress import Progress
from repo.project import Project
from repo.store.source_writer import SourceWriter
from repo.store.sources import close_source, find_source, move_source
from repo.store.versions import VersionWriter

STATISTICS_SHARE = 10  # an update refreshes the statistics once it wrote rows for 1 record in 10 read


def update_source(
    project: Project,
    name: str,
    path: str | os.PathLike[str],
    *,
    on_error: str = "fail",
    error_report: PathLike | None = None,
    progress: Progress | None = None,
    **format_options: Any,
) -> ImportResult:
    """Bring source `name` in line with a newer copy of its files at `path`: only records
    whose content or place changed are stored. The source's format, `relpath` and label map
    apply again; the format's import options come as keywords, as for `import_dataset`."""
    with staged_reports() as reports, project.writing() as connection:
        versions = VersionWriter.begin(connection)
        source = find_source(connection, name)
        stored = source.options or {}
        reader_format = get_format(source.format, role="import")
        options = reader_format.import_settings(format_options)
        assert reader_format.reader is not None
        reader = reader_format.reader(ImportRequest(source.format, Path(path), stored.get("relpath"), options))
        source_id = move_source(versions, source, str(reader.root.resolve()))
        writer = SourceWriter(versions, source_id, new_source=False, image_object=image_record_object, root=reader.root)
        result = write_files(connection, writer, name, reader, on_error, stored.get("label_map"), progress)
        report_skipped(project, result, error_report, reports)
    if needs_statistics(result):
        project.refresh_statistics()
    return result


def needs_statistics(result: ImportResult) -> bool:
    """Whether an update wrote enough for the planner's statistics to be refreshed: rows for
    a tenth of the records it read or more (much as PostgreSQL's autovacuum analyzes a table
    once a tenth of it changed). The refresh reads every table of the project, so an update
    that changed a few records, or none, leaves the statistics as they were: they still
    describe the tables' sizes."""
    return result.changes.total * STATISTICS_SHARE >= result.images + result.annotations


def remove_source(project: Project, name: str) -> None:
    """Remove source `name` from the working state; older revisions keep it."""
    with project.writing() as connection:
        versions = VersionWriter.begin(connection)
        close_source(versions, find_source(connection, name))
