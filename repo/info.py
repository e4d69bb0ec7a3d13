"""What a project holds: its database and schema, sources, their files, and counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, Table, func, select

from repo.project import Project
from repo.store import fetch, migrate, revisions, schema
from repo.store.versions import Snapshot, head_seq


@dataclass
class FileSummary:
    """One stored file of a source."""

    task: str
    subset: str
    name: str
    images: int
    annotations: int


@dataclass
class SourceSummary:
    """One source: where it came from, its items, and its files."""

    name: str
    format: str
    path: str | None
    items: int
    missing_images: int
    files: list[FileSummary] = field(default_factory=list)
    merged_from: list[str] = field(default_factory=list)


@dataclass
class ProjectSummary:
    """What `dsrepo info` shows."""

    url: str
    schema: str
    head: int
    sources: list[SourceSummary]


def summarize(project: Project, *, rev: str | None = None) -> ProjectSummary:
    """The project's database, schema and revisions, and each source's files with their
    numbers of images and annotations, as of `rev` (None: the working state)."""
    with project.reading() as connection:
        return _summarize(connection, project.shown_url, revisions.snapshot(connection, rev))


def _summarize(connection: Connection, url: str, snapshot: Snapshot) -> ProjectSummary:
    items = schema.items
    item_counts = dict(connection.execute(
        select(items.c.source_id, func.count()).where(snapshot.visible(items)).group_by(items.c.source_id)
    ).all())
    missing = dict(connection.execute(
        select(items.c.source_id, func.count())
        .where(snapshot.visible(items), items.c.image_path.is_(None))
        .group_by(items.c.source_id)
    ).all())
    image_counts = _count_by_file(connection, schema.file_images, snapshot)
    annotation_counts = _count_by_file(connection, schema.annotations, snapshot)
    summaries = []
    for source in fetch.source_rows(connection, snapshot):
        summary = SourceSummary(
            source.name, source.format, source.path, item_counts.get(source.id, 0), missing.get(source.id, 0),
            merged_from=(source.options or {}).get("merged_from", []),
        )
        for file in fetch.file_rows(connection, snapshot, source.id):
            summary.files.append(FileSummary(
                file.task, file.subset, file.name, image_counts.get(file.id, 0), annotation_counts.get(file.id, 0)
            ))
        summaries.append(summary)
    return ProjectSummary(url, migrate.schema_revision(connection) or "none", head_seq(connection), summaries)


def _count_by_file(connection: Connection, table: Table, snapshot: Snapshot) -> dict[int, int]:
    query = select(table.c.file_id, func.count()).where(snapshot.visible(table)).group_by(table.c.file_id)
    return dict(connection.execute(query).all())
