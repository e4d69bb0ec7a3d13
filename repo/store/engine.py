"""Connecting to a project database: URL rules, SQLite settings, write locking, bounded waits.

SQLite: writes begin with `BEGIN IMMEDIATE`, so a second writer waits at the start of its
transaction (up to DSREPO_BUSY_TIMEOUT seconds, default 10) instead of failing half-way; the
journal is WAL (set once at `create`), so readers see the last committed state while a write
is in progress. A project that cannot be written (its file, or its folder, where WAL needs to
make its -shm and -wal files) is opened read-only: reading commands work, writing ones fail
with one line. PostgreSQL: plain transactions, `postgresql://` URLs mean psycopg 3, and every
lock wait (tables, rows, dsrepo's advisory locks) ends after DSREPO_BUSY_TIMEOUT through
`lock_timeout`. Either way a wait that runs out is the same one-line "project is busy".
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, StatementError
from sqlalchemy.pool import NullPool

from repo.errors import BusyError, ConfigError, InputError, NotFoundError, OutputError, SchemaError
from repo.model.jsonio import dumps_text, parse_json
from repo.store.copy_pipe import pipe_copies

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
    timeout = busy_timeout()
    if not is_sqlite(url):
        engine = create_engine(url, poolclass=NullPool, connect_args=_pg_session_options(url, timeout), **common)
        pipe_copies(engine)
        return engine
    database = Path(make_url(url).database).resolve()

    def connect() -> sqlite3.Connection:
        return open_sqlite(database, read_only, timeout)

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


def _pg_session_options(url: str, timeout: float) -> dict[str, str]:
    """libpq's `options`: lock_timeout for the whole session (0 would mean no limit at all).

    It covers every heavyweight lock, dsrepo's advisory locks included (PostgreSQL has
    applied lock_timeout to them since 9.3, when the setting appeared; a test checks it)."""
    given = make_url(url).query.get("options")
    given = " ".join(given) if isinstance(given, tuple) else given
    ours = f"-c lock_timeout={max(1, int(timeout * 1000))}"
    return {"options": f"{given} {ours}" if given else ours}


def open_sqlite(database: Path, read_only: bool, timeout: float) -> sqlite3.Connection:
    """A connection to a project file, read-only where the file or its folder cannot be written.

    A WAL database is read through its -shm index, which SQLite makes beside the file: in a
    folder that cannot be written the only way in is `immutable=1`, which reads the file alone.
    That is exact unless a -wal file holds changes not yet merged into it (a crash, a copy
    taken while a command ran): then we refuse rather than show an older state.
    """
    mode = "ro" if read_only else "rw"
    try:
        return _probed(sqlite3.connect(
            f"file:{quote(str(database))}?mode={mode}", uri=True, timeout=timeout, check_same_thread=False,
        ), database)
    except sqlite3.OperationalError as exc:
        if _sqlite_code(exc) != sqlite3.SQLITE_CANTOPEN or not database.is_file():
            raise
    wal = Path(f"{database}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise ConfigError(
            f"{database}: cannot be read where it is: its folder is read-only and its write-ahead log "
            f"{wal.name} holds changes SQLite must first merge into it; open the project once where its "
            "folder can be written"
        )
    return _probed(sqlite3.connect(
        f"file:{quote(str(database))}?mode=ro&immutable=1", uri=True, timeout=timeout, check_same_thread=False,
    ), database)


def _probed(connection: sqlite3.Connection, database: Path) -> sqlite3.Connection:
    """The connection, once it has read the schema (SQLite opens files lazily)."""
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return connection
    except sqlite3.DatabaseError as exc:
        connection.close()
        if _is_damaged(exc):
            raise damaged(database, exc) from None
        raise


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _is_damaged(exc: BaseException) -> bool:
    if _sqlite_code(exc) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return True
    text = str(exc)
    return "malformed" in text or "not a database" in text


def damaged(database: Path | str | None, exc: BaseException) -> SchemaError:
    """The one line for a damaged SQLite file, naming it and how to check it."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SchemaError(
        f"{database}: the database file is damaged ({reason}); check it with "
        f"`sqlite3 {database} 'PRAGMA integrity_check'` or restore a copy"
    )


def create_sqlite_file(path: Path) -> None:
    """Create an empty SQLite database in WAL mode (a persistent setting of the file)."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
    finally:
        connection.close()


def _is_busy(exc: OperationalError) -> bool:
    if getattr(exc.orig, "sqlstate", None) == "55P03":  # PostgreSQL's lock_not_available
        return True
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


BUSY = "project is busy: another dsrepo command is writing to it; try again when it has finished"

# PostgreSQL advisory lock keys (any two 64-bit numbers of our own).
WRITERS_LOCK = 0x647372_65706F  # "dsrepo": held shared by every write, exclusively by commit/checkout
LABELS_LOCK = 0x647372_6C626C  # held while a transaction creates labels


@contextmanager
def database_errors(engine: Engine) -> Iterator[None]:
    """What the database can say that a user can act on, as one line: a wait that ran out,
    a damaged SQLite file. Everything else keeps its traceback."""
    try:
        yield
    except OperationalError as exc:
        if _is_busy(exc):
            raise BusyError(BUSY) from None
        if engine.dialect.name == "sqlite" and _is_damaged(exc.orig or exc):
            raise damaged(engine.url.database, exc.orig or exc) from None
        raise
    except DBAPIError as exc:
        if engine.dialect.name == "sqlite" and _is_damaged(exc.orig or exc):
            raise damaged(engine.url.database, exc.orig or exc) from None
        raise
    except (UnicodeEncodeError, StatementError) as exc:
        unencodable = exc if isinstance(exc, UnicodeEncodeError) else exc.orig
        if not isinstance(unencodable, UnicodeEncodeError):
            raise
        raise _not_text(unencodable) from unencodable


def _not_text(error: UnicodeEncodeError) -> InputError:
    """A value no database takes as text: a path or name read from disk in bytes that are not
    UTF-8 (Python keeps such bytes as lone surrogates), or a JSON string escaping one."""
    shown = str(error.object).encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    return InputError(
        shown[:300], None, None,
        "not UTF-8 text, which the database cannot store: the path is not UTF-8 text (rename the file or "
        "folder), or a JSON string holds a lone surrogate escape",
    )


@contextmanager
def write_transaction(engine: Engine, exclusive: bool = False) -> Iterator[Connection]:
    """One transaction for one user action: committed whole, or rolled back whole.

    On PostgreSQL, writers run side by side but hold a shared lock, and `exclusive` writers
    (commit, checkout) wait for them: a revision must never be recorded while another
    transaction is still writing rows stamped with it. SQLite has one writer at a time anyway.
    """
    with database_errors(engine), _connect(engine) as connection:
        connection.execution_options(dsrepo_write=True)
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
                    connection.exec_driver_sql(f"SELECT {function}({WRITERS_LOCK})")
                yield connection
        except OperationalError as exc:
            if _sqlite_code(exc.orig) == sqlite3.SQLITE_READONLY:
                raise OutputError(
                    f"{engine.url.database} is read-only here: this command writes to the project "
                    f"({str(exc.orig).strip()}); run it where the project's file and folder can be written"
                ) from None
            raise


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent read of the last committed state."""
    with database_errors(engine), _connect(engine) as connection, connection.begin():
        yield connection


@contextmanager
def discarded_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that is rolled back whatever happens in it: for reads that users steer."""
    with database_errors(engine), _connect(engine) as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


def refresh_statistics(engine: Engine, tables: list[str]) -> None:
    """After a bulk write, let the planner know the new sizes.

    Until autovacuum gets to them, freshly filled PostgreSQL tables look empty to the planner,
    which can then choose plans that compare every row with every row. SQLite keeps no
    statistics unless asked (ANALYZE fills `sqlite_stat1`): without them it guesses, and
    answers the per-label questions through the wrong indexes.
    """
    with _connect(engine) as connection:
        try:
            if engine.dialect.name == "postgresql":
                connection.execution_options(isolation_level="AUTOCOMMIT")
                connection.exec_driver_sql("ANALYZE " + ", ".join(tables))
            else:
                connection.execution_options(dsrepo_write=True)
                with connection.begin():
                    for table in tables:
                        connection.exec_driver_sql(f"ANALYZE {table}")
        except OperationalError as exc:
            if not _is_busy(exc):
                raise  # busy: the statistics stay as they were; the user's change is committed
