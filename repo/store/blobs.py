"""Files stored in the database, content-addressed, each once: images (`import --copy-images`,
table `blobs`) and the panoptic PNGs an import read (`panoptic_pngs`; an export writes them
again as they were).

Both tables are append-only and outside versioning: a file is stored under its SHA-256, and
items or panoptic records of any revision refer to it by that digest.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import Connection, Table, insert, select

from repo.store import schema
from repo.store.bulk import insert_skipping_conflicts

_blobs = schema.blobs


def store_blob(connection: Connection, sha256: str, data: bytes) -> None:
    """Store a file's bytes unless a file with the same digest is stored already."""
    if connection.execute(select(_blobs.c.sha256).where(_blobs.c.sha256 == sha256)).first() is None:
        connection.execute(insert(_blobs).values(sha256=sha256, size=len(data), data=data))


def blob_data(connection: Connection, sha256: str) -> bytes | None:
    """The bytes of a stored file, if stored."""
    return connection.execute(select(_blobs.c.data).where(_blobs.c.sha256 == sha256)).scalar()


def store_blobs(connection: Connection, table: Table, files: Mapping[str, bytes]) -> None:
    """Store many files (SHA-256 -> bytes) at once in `table`; digests stored already are left
    alone, also when a concurrent import stores the same file."""
    if not files:
        return
    statement = insert_skipping_conflicts(connection, table, index_elements=[table.c.sha256])
    connection.execute(statement, [{"sha256": sha256, "size": len(data), "data": data} for sha256, data in files.items()])


def held_blobs(connection: Connection, table: Table, digests: Collection[str]) -> set[str]:
    """Which of `digests` `table` holds already (one query)."""
    if not digests:
        return set()
    return set(connection.execute(select(table.c.sha256).where(table.c.sha256.in_(list(digests)))).scalars())


def blob_datas(connection: Connection, table: Table, digests: Collection[str]) -> dict[str, bytes]:
    """The bytes of the files among `digests` that `table` holds, by digest (one query)."""
    if not digests:
        return {}
    rows = connection.execute(select(table.c.sha256, table.c.data).where(table.c.sha256.in_(list(digests))))
    return {sha256: bytes(data) for sha256, data in rows}
