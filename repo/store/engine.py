"""Connecting to a project database: URL rules, SQLite settings, write locking.

SQLite: writes begin with `BEGIN IMMEDIATE`, so a second writer waits at the start of its
transaction (up to DSREPO_BUSY_TIMEOUT seconds, default 10) instead of failing half-way; the
journal is WAL (set once at `create`), so readers see the last committed state while a write
is in progress. PostgreSQL: plain transactions; `postgresql://` URLs mean psycopg 3.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import NullPool

from repo.errors import BusyError, ConfigError, NotFoundError
from repo.model.jsonio import dumps_text, parse_json

DEFAULT_BUSY_TIMEOUT = 10.0
_MISSING_DATABASE = re.compile(r'database ".*" does not exist')


def normalize_url(url: str) -> str:
    """Accept the usual spellings; `postgresql://` and `postgres://` mean psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    try:
        make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"'{url}' is not a database URL (expected e.g. sqlite:///path/project.db or "
            "postgresql://user@host/dbname)"
        ) from None
    return url


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def masked(url: str) -> str:
    """The URL as it may be shown: the password replaced by ***."""
    return make_url(url).render_as_string(hide_password=True)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def busy_timeout() -> float:
    raw = os.environ.get("DSREPO_BUSY_TIMEOUT")
    if not raw:
        return DEFAULT_BUSY_TIMEOUT
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise ConfigError(f"DSREPO_BUSY_TIMEOUT must be a number of seconds, got '{raw}'") from None


def make_engine(url: str, read_only: bool = False) -> Engine:
    """An engine for a project database; `read_only` opens SQLite with mode=ro."""
    common = dict(json_serializer=dumps_text, json_deserializer=parse_json)
    if not is_sqlite(url):
        return create_engine(url, poolclass=NullPool, **common)
    database = make_url(url).database
    timeout = busy_timeout()

    def connect() -> sqlite3.Connection:
        mode = "ro" if read_only else "rw"
        target = f"file:{Path(database).resolve()}?mode={mode}"
        return sqlite3.connect(target, uri=True, timeout=timeout, check_same_thread=False)

    engine = create_engine(url, creator=connect, poolclass=NullPool, **common)  # the URL names it; creator opens it

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("dsrepo_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def create_sqlite_file(path: Path) -> None:
    """Create an empty SQLite database in WAL mode (a persistent setting of the file)."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
    finally:
        connection.close()


def _is_busy(exc: OperationalError) -> bool:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return "database is locked" in text or "database is busy" in text


def _connect(engine: Engine) -> Connection:
    """A connection, or a one-line error when the database cannot be reached at all."""
    try:
        return engine.connect()
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        shown = masked(str(engine.url))
        if _MISSING_DATABASE.search(reason):
            name = engine.url.database
            raise NotFoundError(
                f"{shown}: the server has no database '{name}'; create it with `createdb {name}` "
                f"(or the server's CREATE DATABASE \"{name}\"), then run `dsrepo create`"
            ) from None
        raise ConfigError(f"cannot use the database {shown}: {reason}") from None


# PostgreSQL advisory lock keys (any two 64-bit numbers of our own).
WRITERS_LOCK = 0x647372_65706F  # "dsrepo": held shared by every write, exclusively by commit/checkout
LABELS_LOCK = 0x647372_6C626C  # held while a transaction creates labels


@contextmanager
def write_transaction(engine: Engine, exclusive: bool = False) -> Iterator[Connection]:
    """One transaction for one user action: committed whole, or rolled back whole.

    On PostgreSQL, writers run side by side but hold a shared lock, and `exclusive` writers
    (commit, checkout) wait for them: a revision must never be recorded while another
    transaction is still writing rows stamped with it. SQLite has one writer at a time anyway.
    """
    with _connect(engine) as connection:
        connection.execution_options(dsrepo_write=True)
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
                    connection.exec_driver_sql(f"SELECT {function}({WRITERS_LOCK})")
                yield connection
        except OperationalError as exc:
            if _is_busy(exc):
                raise BusyError(
                    "project is busy: another dsrepo command is writing to it; "
                    "try again when it has finished"
                ) from None
            raise


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent read of the last committed state."""
    with _connect(engine) as connection, connection.begin():
        yield connection


def refresh_statistics(engine: Engine, tables: list[str]) -> None:
    """After a bulk write, let PostgreSQL's planner know the new sizes.

    Until autovacuum gets to them, freshly filled tables look empty to the planner, which can
    then choose plans that compare every row with every row. (SQLite's plans rest on the
    partial indexes alone, and ANALYZE there would be a write.)
    """
    if engine.dialect.name != "postgresql":
        return
    with _connect(engine) as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql("ANALYZE " + ", ".join(tables))
