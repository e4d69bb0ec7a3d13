"""Bulk inserts inside a write transaction, on both databases. On PostgreSQL another thread
sends the COPYs (repo.store.copy_pipe): the transaction must still see its rows in order, fail
on a bad row before it commits, roll back whatever was handed over, turn a lock wait that runs
out into "busy", and stop at once on Ctrl-C even while a COPY waits for a lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

from helpers import Backend
from repo.errors import BusyError
from repo.project import Project
from repo.store import schema
from repo.store.bulk import insert_rows

_table = schema.file_digests


def _rows(first: int, count: int) -> list[dict[str, object]]:
    return [
        {"path": f"/data/{n:06d}.png", "device": 1, "inode": n, "size": n, "mtime_ns": n, "ctime_ns": n, "sha256": "0" * 64}
        for n in range(first, first + count)
    ]


def _paths(project: Project) -> list[str]:
    with project.reading() as connection:
        return list(connection.execute(select(_table.c.path).order_by(_table.c.path)).scalars())


def test_the_next_statement_sees_every_row_inserted_before_it(backend: Backend) -> None:
    project = backend.create()
    with project.writing() as connection:
        for first in range(0, 12_000, 1000):  # more batches than are ever sent ahead
            insert_rows(connection, _table, _rows(first, 1000))
        assert connection.execute(select(func.count()).select_from(_table)).scalar_one() == 12_000
        assert connection.execute(select(func.max(_table.c.inode))).scalar_one() == 11_999
        insert_rows(connection, _table, _rows(12_000, 1))
    assert len(_paths(project)) == 12_001


def test_a_bad_row_fails_at_the_latest_at_the_next_statement(backend: Backend) -> None:
    project = backend.create()
    with pytest.raises(IntegrityError, match="file_digests"):
        with project.writing() as connection:
            insert_rows(connection, _table, _rows(0, 10) + _rows(5, 1))  # a path twice
            connection.execute(select(1))
            pytest.fail("the statement after the bad insert ran")
    assert _paths(project) == []


def test_a_bad_row_in_the_last_insert_fails_the_commit_and_leaves_the_table_as_it_was(backend: Backend) -> None:
    project = backend.create()
    with project.writing() as connection:
        insert_rows(connection, _table, _rows(0, 3))
    with pytest.raises(IntegrityError, match="file_digests"):
        with project.writing() as connection:
            insert_rows(connection, _table, _rows(100, 500))
            insert_rows(connection, _table, _rows(2, 1))  # already stored
    assert _paths(project) == [row["path"] for row in _rows(0, 3)]
    with project.writing() as connection:  # the project still takes writes
        insert_rows(connection, _table, _rows(3, 1))
    assert len(_paths(project)) == 4


def test_an_interrupted_transaction_rolls_back_the_rows_handed_over(backend: Backend) -> None:
    project = backend.create()
    with pytest.raises(KeyboardInterrupt):
        with project.writing() as connection:
            for first in range(0, 8000, 2000):
                insert_rows(connection, _table, _rows(first, 2000))
            raise KeyboardInterrupt
    assert _paths(project) == []
    with project.writing() as connection:
        insert_rows(connection, _table, _rows(0, 2))
    assert len(_paths(project)) == 2



def test_a_row_the_driver_cannot_send_fails_the_transaction(backend: Backend) -> None:
    """A lone surrogate (what `os.fsdecode` makes of a file name that is not UTF-8) cannot be
    encoded: the error reaches the caller, however the driver raises it, and nothing stays."""
    project = backend.create()
    with pytest.raises(Exception) as caught:
        with project.writing() as connection:
            insert_rows(connection, _table, [{**_rows(0, 1)[0], "path": "/data/\udcff.png"}])
            connection.execute(select(1))
    assert isinstance(caught.value, UnicodeEncodeError) or isinstance(caught.value.__cause__, UnicodeEncodeError)
    assert _paths(project) == []


@pytest.fixture
def postgresql(tmp_path: Path, pg_admin_url: str) -> Iterator[Backend]:
    """PostgreSQL alone: what is checked here (lock waits, the COPY thread) is its own."""
    backend = Backend("postgresql", tmp_path, pg_admin_url)
    yield backend
    backend.drop_all()


class _LockHolder:
    """Another session of the project's database, holding a lock until `release`."""

    def __init__(self, project: Project, statement: str):
        self.engine = create_engine(project.url, poolclass=NullPool)
        self.connection = self.engine.connect()
        self.connection.execute(text(statement))

    def waited_for(self, timeout: float = 30) -> None:
        """Until some session waits for a lock."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.engine.connect() as connection:
                if connection.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one():
                    return
            time.sleep(0.1)
        pytest.fail("no session waited for a lock")

    def release(self) -> None:
        self.connection.rollback()
        self.connection.close()
        self.engine.dispose()


def test_a_copy_waiting_past_the_lock_timeout_is_busy(postgresql: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSREPO_BUSY_TIMEOUT", "1")
    project = postgresql.create()
    holder = _LockHolder(project, f"LOCK TABLE {_table.name} IN SHARE MODE")
    try:
        with pytest.raises(BusyError):  # raised at the commit
            with project.writing() as connection:
                insert_rows(connection, _table, _rows(0, 10))
        with pytest.raises(BusyError):  # raised at the next statement
            with project.writing() as connection:
                insert_rows(connection, _table, _rows(0, 10))
                connection.execute(select(1))
    finally:
        holder.release()
    assert _paths(project) == []


_INSERTING = """
    import sys
    from repo.project import Project
    from repo.store import schema
    from repo.store.bulk import insert_rows
    project = Project.open(sys.argv[1])
    with project.writing() as connection:
        for first in range(0, 800, 100):  # more than the pipe takes ahead: the last wait to be queued
            insert_rows(connection, schema.file_digests, [
                {"path": str(n), "device": 1, "inode": n, "size": n, "mtime_ns": n, "ctime_ns": n, "sha256": "0" * 64}
                for n in range(first, first + 100)
            ])
"""


def test_ctrl_c_while_a_copy_waits_for_a_lock_stops_at_once(postgresql: Backend) -> None:
    """The rollback drops the COPYs queued and cancels the one waiting, instead of waiting
    for the lock's timeout (here 20 s) to give up."""
    project = postgresql.create()
    holder = _LockHolder(project, f"LOCK TABLE {_table.name} IN SHARE MODE")
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_INSERTING), str(project.directory)],
            env={**os.environ, "DSREPO_BUSY_TIMEOUT": "20"}, stderr=subprocess.PIPE, text=True,
        )
        holder.waited_for()
        time.sleep(0.5)
        interrupted = time.monotonic()
        child.send_signal(signal.SIGINT)
        try:
            _, stderr = child.communicate(timeout=40)
        finally:
            child.kill()
        seconds = time.monotonic() - interrupted
    finally:
        holder.release()
    assert child.returncode != 0 and "KeyboardInterrupt" in stderr, stderr[-2000:]
    assert seconds < 5, f"Ctrl-C took {seconds:.1f} s to stop the transaction"
    assert _paths(project) == []
