"""The remembered windows of big annotation files (table `window_digests`, migration 0010): a
cache outside versions, by the SHA-256 of a file's bytes (see repo.model.windows)."""

from __future__ import annotations

from sqlalchemy import Connection, exists, select

from repo.model.records import WindowDigests
from repo.store import schema
from repo.store.bulk import insert_skipping_conflicts

_table = schema.window_digests
FRAME = -1  # the place of the digest of every byte but the windows'


def remember_windows(connection: Connection, file_sha256: str, digests: WindowDigests) -> None:
    """Keep a file's window digests, unless the same bytes were read in windows before."""
    if connection.execute(select(exists().where(_table.c.file_sha256 == file_sha256))).scalar():
        return
    rows = [{"file_sha256": file_sha256, "place": FRAME, "elements": 0, "digest": digests.frame}]
    rows += [
        {"file_sha256": file_sha256, "place": place, "elements": elements, "digest": digest}
        for place, (digest, elements) in enumerate(digests.windows)
    ]
    connection.execute(insert_skipping_conflicts(connection, _table), rows)  # a concurrent import may add them too


def known_windows(connection: Connection, file_sha256: str) -> WindowDigests | None:
    """The window digests of a file with these bytes, if it was read in windows."""
    rows = connection.execute(
        select(_table.c.place, _table.c.elements, _table.c.digest)
        .where(_table.c.file_sha256 == file_sha256).order_by(_table.c.place)
    ).all()
    if not rows or rows[0].place != FRAME:
        return None
    return WindowDigests(bytes(rows[0].digest), [(bytes(row.digest), row.elements) for row in rows[1:]])
