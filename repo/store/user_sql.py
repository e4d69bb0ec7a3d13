"""The one path for SQL that users write: `query`, `export --where`, and the web app.

What it guarantees, on both databases: exactly one statement, and a query; nothing it does
lasts (no row written, nothing committed, no setting left behind for the caller's next
statement, no file written or read on the server); it stops at its timeout or at Ctrl-C;
its rows are read in batches as the caller consumes them.

- PostgreSQL: the statement runs in a SAVEPOINT of the caller's transaction that is always
  rolled back to (whatever it did, a large object or `set_config('search_path', ...)`, is
  undone before the caller's next statement), with `transaction_read_only`, as the project's
  reader role when the connection has powers to drop (see `readers`). It is declared as a
  cursor through the extended protocol: the server admits one statement only, and only a
  SELECT, VALUES, TABLE or WITH ... SELECT without data-modifying parts. Each FETCH runs
  under a `statement_timeout` of the time left. Session-level advisory locks it took are
  released.
- SQLite: an authorizer that allows reading only (no pragma, no ATTACH, no VACUUM INTO),
  and a progress handler that stops the statement at the timeout or on Ctrl-C; the driver
  admits one statement.

The timeout counts the time the database spends on the statement (running it and fetching
rows), not the time the caller spends writing them out.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from repo.errors import QueryError
from repo.store.readers import role_for_user_sql

DEFAULT_TIMEOUT = 300.0  # seconds; `--timeout 0` means no limit
BATCH = 2000  # rows fetched at a time
_CURSOR = "dsrepo_user_sql"
_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
_QUERY_WORDS = {"select", "values", "table", "with"}


@dataclass
class Rows:
    """The result of a user's statement: its column names, and its rows as they are fetched
    (valid while the `user_statement` context is open)."""

    columns: list[str]
    batches: Iterator[list[tuple[Any, ...]]]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for batch in self.batches:
            yield from batch


class _Clock:
    """Time spent in the database on one statement, against its limit (None: no limit)."""

    def __init__(self, limit: float | None):
        self.limit = limit if limit else None
        self.spent = 0.0
        self.since: float | None = None
        self.ran_out = False

    @contextmanager
    def running(self) -> Iterator[None]:
        self.since = time.monotonic()
        try:
            yield
        finally:
            self.spent += time.monotonic() - self.since
            self.since = None

    def left(self) -> float | None:
        if self.limit is None:
            return None
        running = time.monotonic() - self.since if self.since is not None else 0.0
        return self.limit - self.spent - running

    def over(self) -> bool:
        """SQLite's progress handler: a true result stops the statement."""
        left = self.left()
        if left is not None and left <= 0:
            self.ran_out = True
        return self.ran_out


@contextmanager
def user_statement(
    connection: Connection, sql: str, *, what: str, timeout: float | None = DEFAULT_TIMEOUT
) -> Iterator[Rows]:
    """Run a user's `sql` in `connection`'s open transaction, as the module says; its rows are
    fetched while the context is open. `what` names the statement in messages ("query",
    "--where"); every failure is a one-line QueryError (`--timeout` or Ctrl-C included)."""
    clock = _Clock(timeout)
    run = _postgresql if connection.dialect.name == "postgresql" else _sqlite
    try:
        with run(connection, sql, what, clock) as rows:
            yield rows
    except KeyboardInterrupt:
        raise QueryError(f"{what}: interrupted (Ctrl-C); nothing was changed") from None
    except (DBAPIError, sqlite3.Error) as exc:
        raise _user_error(exc, sql, what, clock) from None
    except Exception as exc:  # psycopg's errors, without importing psycopg for SQLite users
        if type(exc).__module__.startswith("psycopg"):
            raise _user_error(exc, sql, what, clock) from None
        raise


@contextmanager
def _postgresql(connection: Connection, sql: str, what: str, clock: _Clock) -> Iterator[Rows]:
    role = role_for_user_sql(connection, what)
    raw = connection.connection.driver_connection
    raw.execute(f"SAVEPOINT {_CURSOR}")
    cursor = None
    try:
        raw.execute("SET LOCAL transaction_read_only = on")
        if role is not None:
            raw.execute(f'SET LOCAL ROLE "{role}"')
        _limit(raw, clock)
        cursor = raw.cursor(name=_CURSOR, scrollable=False, withhold=False)
        with clock.running():
            cursor.execute(sql)  # DECLARE ... CURSOR FOR <sql>, through the extended protocol

        def batches() -> Iterator[list[tuple[Any, ...]]]:
            while True:
                _limit(raw, clock)
                with clock.running():
                    rows = cursor.fetchmany(BATCH)
                if not rows:
                    return
                yield [tuple(row) for row in rows]

        yield Rows([column.name for column in cursor.description or []], batches())
    finally:
        if cursor is not None:
            try:
                cursor.close()
            except Exception:  # noqa: BLE001 - the transaction is in error; the rollback below ends it
                pass
        raw.execute(f"ROLLBACK TO SAVEPOINT {_CURSOR}")
        raw.execute(f"RELEASE SAVEPOINT {_CURSOR}")
        raw.execute("SELECT pg_advisory_unlock_all()")


def _limit(raw: Any, clock: _Clock) -> None:
    left = clock.left()
    milliseconds = 0 if left is None else max(1, int(left * 1000))
    raw.execute(f"SET LOCAL statement_timeout = {milliseconds}")


@contextmanager
def _sqlite(connection: Connection, sql: str, what: str, clock: _Clock) -> Iterator[Rows]:
    raw = connection.connection.driver_connection
    raw.set_authorizer(_read_only_authorizer)
    raw.set_progress_handler(clock.over, 1000)
    cursor = raw.cursor()
    try:
        with clock.running():
            cursor.execute(sql)

        def batches() -> Iterator[list[tuple[Any, ...]]]:
            while True:
                with clock.running():
                    rows = cursor.fetchmany(BATCH)
                if not rows:
                    return
                yield rows

        yield Rows([d[0] for d in cursor.description] if cursor.description else [], batches())
    finally:
        cursor.close()
        raw.set_progress_handler(None, 0)
        raw.set_authorizer(None)


def _read_only_authorizer(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


def _user_error(exc: BaseException, sql: str, what: str, clock: _Clock) -> QueryError:
    """One line for whatever the database said about the user's statement."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip()
    first = text.splitlines()[0] if text else type(original).__name__
    if clock.ran_out or "statement timeout" in text:
        return QueryError(f"{what}: stopped after {clock.limit:g} s (--timeout); nothing was changed")
    if text == "interrupted" or "canceling statement due to user request" in text:
        return QueryError(f"{what}: interrupted (Ctrl-C); nothing was changed")
    if "multiple commands" in text or "one statement at a time" in text:
        return QueryError(f"{what}: exactly one statement is allowed")
    word = _first_word(sql)
    if what == "query" and word and word not in _QUERY_WORDS and "syntax error" in text:
        return QueryError(
            f"{what}: refused: queries are read-only (only SELECT, VALUES, TABLE or WITH ... SELECT run; "
            f"got {word.upper()})"
        )
    if any(sign in text for sign in ("not authorized", "readonly database", "read-only transaction",
                                     "data-modifying", "authorization denied")):
        return QueryError(f"{what}: refused: queries are read-only ({first})")
    if "permission denied" in text or "must be" in text:
        return QueryError(f"{what}: refused: {first}")
    return QueryError(f"{what}: {first}")


def _first_word(sql: str) -> str:
    """The statement's first keyword, after comments and parentheses (for messages only)."""
    stripped = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S).lstrip(" \t\r\n(")
    match = re.match(r"[A-Za-z]+", stripped)
    return match.group(0).lower() if match else ""
