"""Source rows in the tables: finding, naming, adding, re-versioning and closing them (the
actions on sources are in `repo.sources`)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, Row, select

from repo.errors import ConflictError, NotFoundError
from repo.model.hashing import record_hash
from repo.store import schema
from repo.store.copy_pipe import settle
from repo.store.versions import WORKING_STATE, Snapshot, VersionWriter

_sources = schema.sources
_NAME = re.compile(r"^[^\s/\\][^/\\]*$")


def live_names(connection: Connection, snapshot: Snapshot = WORKING_STATE) -> list[str]:
    query = select(_sources.c.name).where(snapshot.visible(_sources)).order_by(_sources.c.id)
    return list(connection.execute(query).scalars())


def find_source(connection: Connection, name: str, snapshot: Snapshot = WORKING_STATE) -> Row[Any]:
    query = select(_sources).where(_sources.c.name == name, snapshot.visible(_sources))
    row = connection.execute(query).first()
    if row is None:
        names = live_names(connection, snapshot)
        known = f" (sources: {', '.join(names)})" if names else " (the project has no sources)"
        raise NotFoundError(f"no source named '{name}'{known}")
    return row


def auto_name(connection: Connection, stem: str) -> str:
    """A free name derived from the imported path: `coco_instances`, `coco_instances-2`, ..."""
    base = re.sub(r"[^\w.-]+", "_", stem).strip("._-") or "source"
    taken = set(live_names(connection))
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}-{number}"
    return name


def insert_source(
    versions: VersionWriter, name: str, format_name: str, path: str | None, options: dict[str, Any] | None
) -> int:
    if not _NAME.match(name):
        raise ConflictError(f"'{name}' is not a valid source name (no slashes, not blank)")
    if name in live_names(versions.connection):
        raise ConflictError(
            f"a source named '{name}' already exists; choose another name with -n, "
            f"or update it with `dsrepo update {name} PATH`"
        )
    record = {"name": name, "format": format_name, "path": path, "options": options}
    [source_id] = versions.insert(_sources, [{**record, "hash": record_hash(record)}])
    settle(versions.connection)  # a concurrent import of the same name fails here, not later
    return source_id


def source_names_by_id(connection: Connection) -> dict[int, str]:
    """The name of every source that ever existed (its latest version's name)."""
    query = select(_sources.c.id, _sources.c.name).order_by(_sources.c.row_id)
    return dict(connection.execute(query).all())


def move_source(versions: VersionWriter, source: Row[Any], path: str) -> int:
    """A new version of the source row when its origin moved; returns the source's id."""
    if source.path != path:
        record = {"name": source.name, "format": source.format, "path": path, "options": source.options}
        versions.close_rows(_sources, [source.row_id])
        versions.insert_versions(_sources, [{**record, "id": source.id, "hash": record_hash(record)}])
    return source.id


def release_name(versions: VersionWriter, source: Row[Any]) -> None:
    """Close only the source's own row, so that its name is free within this change (a merge
    may give it to the merged source); `close_source` closes the rest."""
    versions.close_rows(_sources, [source.row_id])


def close_source(versions: VersionWriter, source: Row[Any]) -> None:
    """Close the source and every row that belongs to it (older revisions keep them)."""
    files = schema.files
    file_ids = list(versions.connection.execute(
        select(files.c.id).where(files.c.source_id == source.id, files.c.rev_to.is_(None))
    ).scalars())
    for table in (schema.categories, schema.file_images, schema.annotations, schema.panoptic_records):
        for start in range(0, len(file_ids), 500):
            versions.close(table, table.c.file_id.in_(file_ids[start:start + 500]))
    versions.close(files, files.c.source_id == source.id)
    versions.close(schema.items, schema.items.c.source_id == source.id)
    versions.close_rows(_sources, [source.row_id])
