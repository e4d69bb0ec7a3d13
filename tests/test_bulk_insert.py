"""Bulk inserts inside a write transaction, on both databases. On PostgreSQL another thread
sends the COPYs (repo.store.copy_pipe): the transaction must still see its rows in order, fail
on a bad row before it commits, and roll back whatever was handed over."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from helpers import Backend
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
