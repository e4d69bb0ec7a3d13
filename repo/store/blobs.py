"""Image files stored in the database (`import --copy-images`): content-addressed, each once.

The `blobs` table is append-only and outside versioning: a file is stored under its SHA-256,
and items of any revision refer to it by that digest.
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, select

from repo.store import schema

_blobs = schema.blobs


def store_blob(connection: Connection, sha256: str, data: bytes) -> None:
    """Store a file's bytes unless a file with the same digest is stored already."""
    if connection.execute(select(_blobs.c.sha256).where(_blobs.c.sha256 == sha256)).first() is None:
        connection.execute(insert(_blobs).values(sha256=sha256, size=len(data), data=data))


def blob_data(connection: Connection, sha256: str) -> bytes | None:
    """The bytes of a stored file, if stored."""
    return connection.execute(select(_blobs.c.data).where(_blobs.c.sha256 == sha256)).scalar()
