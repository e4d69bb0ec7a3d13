"""Digests of files on disk, known again from what `stat` says of them, as git's index does.

An update must tell whether each image and panoptic PNG of a source still has the bytes it had;
reading and hashing thousands of files for that costs as much as the import did. So the digests
an import or update takes are remembered in the project (table `file_digests`, migration 0008),
each with the file's device, inode, size and modification and change times in nanoseconds. A
file whose `stat` gives all of them again has the same bytes: every write and rename sets the
change time, which no program can set back, and the inode tells the file apart from another one
a symlink may point to now. A digest taken less than RACY_NS after the file last changed is not
remembered: the clock may not have ticked between a write and our read (git's "racily clean"
files). The table is a cache outside versions: without it, files are only read again.
"""

from __future__ import annotations

import hashlib
import os
import time

from sqlalchemy import Connection, select

from repo.model.paths import Stamp, read_real_file, stamp
from repo.store import schema
from repo.store.bulk import dialect_insert

RACY_NS = 2_000_000_000
CHUNK = 1 << 20  # bytes read at a time
SAVE_BATCH = 5000

_table = schema.file_digests
_COLUMNS = ("path", "device", "inode", "size", "mtime_ns", "ctime_ns", "sha256")


class FileDigests:
    """The remembered digests of one project, read on first use; new ones are written by `save`,
    inside the caller's transaction (a failed import leaves the cache as it was too)."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self._remembered: dict[str, tuple[Stamp, str]] | None = None
        self._taken: dict[str, tuple[Stamp, str]] = {}

    def known(self, path: str, status: os.stat_result) -> str | None:
        """The digest of the file at `path` if it was taken when the file had this `status`."""
        entry = self.entry(path)
        return entry[1] if entry is not None and entry[0] == stamp(status) else None

    def entry(self, path: str) -> tuple[Stamp, str] | None:
        """The stamp and digest remembered for `path`, for a worker thread to compare with
        the file's `stat` (it must not query the database)."""
        if self._remembered is None:
            rows = self.connection.execute(select(_table))
            self._remembered = {
                row.path: ((row.device, row.inode, row.size, row.mtime_ns, row.ctime_ns), row.sha256) for row in rows
            }
        key = _key(path)
        return self._taken.get(key) or self._remembered.get(key)

    def remember(self, path: str, status: os.stat_result, sha256: str) -> None:
        """Keep the digest of bytes read while the file had `status`, unless it changed too
        recently to be told apart from a change to come."""
        if time.time_ns() - max(status.st_mtime_ns, status.st_ctime_ns) >= RACY_NS:
            self._taken[_key(path)] = (stamp(status), sha256)

    def found_file_sha256(self, real: str, status: os.stat_result) -> str:
        """The SHA-256 of a file `FolderFiles.find` found (`real`, with `status`), read only
        when its remembered digest was taken with another `stat`."""
        digest = self.known(real, status)
        if digest is None:
            digest = hashlib.sha256(read_real_file(real)).hexdigest()
            self.remember(real, status, digest)
        return digest

    def file_sha256(self, path: str) -> str | None:
        """The SHA-256 of a file's bytes, None if it cannot be read; the bytes are read only
        when the file's `stat` is not the one its digest was taken with."""
        try:
            status = os.stat(path)
        except OSError:
            return None
        digest = self.known(path, status)
        if digest is None:
            read = _read_sha256(path)
            if read is None:
                return None
            digest, read_status = read
            if stamp(read_status) == stamp(status):  # not written to since it was looked at
                self.remember(path, status, digest)
        return digest

    def save(self) -> None:
        """Write the digests taken since the last save (replacing older ones of the same paths),
        in path order, so that two concurrent imports of one folder lock rows in one order."""
        entries = sorted(self._taken.items())
        for start in range(0, len(entries), SAVE_BATCH):
            batch = entries[start:start + SAVE_BATCH]
            rows = [dict(zip(_COLUMNS, (path, *status, digest))) for path, (status, digest) in batch]
            statement = dialect_insert(self.connection, _table)
            statement = statement.on_conflict_do_update(
                index_elements=[_table.c.path],
                set_={name: statement.excluded[name] for name in rows[0] if name != "path"},
            )
            self.connection.execute(statement, rows)
        if self._remembered is not None:
            self._remembered.update(self._taken)
        self._taken.clear()


def _key(path: str) -> str:
    """Files are remembered by absolute path (the paths given here are most often absolute
    already, and `abspath` costs more than the lookup)."""
    return path if path.startswith("/") else os.path.abspath(path)


def file_sha256(path: str | os.PathLike[str]) -> str | None:
    """The SHA-256 of a file's bytes; None if it cannot be read (the reader then says why)."""
    read = _read_sha256(path)
    return read[0] if read is not None else None


def _read_sha256(path: str | os.PathLike[str]) -> tuple[str, os.stat_result] | None:
    """A file's SHA-256 and its `stat` once read. Read with bare `os.read` calls, a chunk at a
    time: an update digests panoptic PNGs, and most are a few KiB, where a buffered file object
    costs more than the hashing."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    hashed = hashlib.sha256()
    try:
        while chunk := os.read(descriptor, CHUNK):
            hashed.update(chunk)
        return hashed.hexdigest(), os.fstat(descriptor)
    except OSError:
        return None
    finally:
        os.close(descriptor)
