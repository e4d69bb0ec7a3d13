"""A project: one folder, one database.

The folder holds `project.db` (SQLite, the default) or remembers, in `dsrepo.json`, the URL of
another database (PostgreSQL). Every user action is one transaction on that database, opened
here; the modules that do the work (`importing`, `exporting`, ...) receive the connection.

A URL with a password is remembered in a file only its owner can read (mode 0600); a URL
without one leaves the password to libpq (PGPASSWORD, ~/.pgpass).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from repo._internal.gcpause import collector_paused
from repo.errors import ConfigError, ConflictError, DsrepoError, NotFoundError, OutputError
from repo.store import migrate, readers
from repo.store.engine import (
    create_sqlite_file,
    is_sqlite,
    make_engine,
    masked,
    normalize_url,
    read_transaction,
    refresh_statistics,
    sqlite_url,
    write_transaction,
)
from repo.store.identity import existing_project, record_identity
from repo.store.schema import VERSIONED

DB_FILE = "project.db"
CONFIG_FILE = "dsrepo.json"


@dataclass
class Project:
    """An open project: its folder, its database URL and an engine. Make one with
    `Project.create` or `Project.open`; every action takes it as its first argument."""

    directory: Path
    url: str
    engine: Engine

    # -- locating and creating --------------------------------------------------------------

    @staticmethod
    def _chosen_url(directory: Path, db: str | None) -> str | None:
        """--db, then DSREPO_DB, then the URL remembered in the folder."""
        if db:
            return normalize_url(db)
        if os.environ.get("DSREPO_DB"):
            return normalize_url(os.environ["DSREPO_DB"])
        config = directory / CONFIG_FILE
        if config.is_file():
            try:
                return normalize_url(json.loads(config.read_text(encoding="utf-8"))["db"])
            except (ValueError, KeyError, TypeError):
                raise ConfigError(f"{config}: not a dsrepo project settings file (expected {{\"db\": URL}})") from None
        return None

    @classmethod
    def create(cls, directory: str | os.PathLike[str], db: str | None = None) -> "Project":
        """Make `directory` a project on an empty database and build the schema there: a new
        SQLite file `DIRECTORY/project.db`, or the database `db` (a URL, remembered in
        `DIRECTORY/dsrepo.json`), or DSREPO_DB's."""
        directory = Path(directory)
        if (directory / CONFIG_FILE).exists() or (directory / DB_FILE).exists():
            raise ConflictError(f"{directory} is already a dsrepo project")
        made = not directory.exists()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{directory}: cannot be made ({exc.strerror or exc})") from None
        try:
            return cls._create(directory, db)
        except DsrepoError:
            if made and not any(directory.iterdir()):
                directory.rmdir()  # leave no trace of a project that could not be made
            raise

    @classmethod
    def _create(cls, directory: Path, db: str | None) -> "Project":
        url = cls._chosen_url(directory, db)
        remember = url is not None
        if url is None:
            url = sqlite_url((directory / DB_FILE).resolve())
        if is_sqlite(url):
            database = Path(url.split("///", 1)[1])
            if database.exists() and database.stat().st_size > 0:
                owner = _sqlite_owner(url)
                held = f"holds {owner}" if owner else "already exists"
                raise ConflictError(f"{database} {held}; `create` needs a new or empty database")
            database.parent.mkdir(parents=True, exist_ok=True)
            create_sqlite_file(database)
        project = cls(directory, url, make_engine(url))
        with write_transaction(project.engine) as connection:
            tables = inspect(connection).get_table_names()
            if tables:
                owner = existing_project(connection)
                held = owner or f"tables ({', '.join(sorted(tables)[:5])})"
                raise ConflictError(f"{masked(url)} already holds {held}; `create` needs an empty database")
            migrate.create_schema(connection)
            resolved = directory.resolve()
            record_identity(connection, resolved.name, str(resolved))
        if remember:
            _remember(directory / CONFIG_FILE, url)
        return project

    @classmethod
    def open(cls, directory: str | os.PathLike[str], db: str | None = None) -> "Project":
        """Open an existing project; opening writes nothing. The database is `db`, else
        DSREPO_DB, else the URL remembered in the folder, else `DIRECTORY/project.db`."""
        directory = Path(directory)
        project = cls._locate(directory, db)
        with read_transaction(project.engine) as connection:
            migrate.check_current(connection, masked(project.url))
        return project

    @classmethod
    def upgrade(cls, directory: str | os.PathLike[str], db: str | None = None) -> tuple[str | None, str]:
        """Migrate a project's schema to this dsrepo's; returns (old, new) schema revisions."""
        directory = Path(directory)
        project = cls._locate(directory, db)
        with project.writing() as connection:
            old = migrate.schema_revision(connection)
            if old is None:
                raise NotFoundError(f"{project.shown_url} is not a dsrepo project (no schema)")
            migrate.upgrade(connection)
            readers.ensure_reader(connection)  # also when the schema was current: the role may be new
            return old, migrate.schema_revision(connection) or old

    @classmethod
    def _locate(cls, directory: Path, db: str | None) -> "Project":
        url = cls._chosen_url(directory, db)
        if url is None:
            database = directory / DB_FILE
            if not database.is_file():
                raise NotFoundError(
                    f"{directory} is not a dsrepo project (no {DB_FILE}); create one with "
                    f"`dsrepo create -p {directory}` or name a database with --db"
                )
            url = sqlite_url(database.resolve())
        elif is_sqlite(url) and not Path(url.split("///", 1)[1]).is_file():
            raise NotFoundError(f"{masked(url)}: no such database; create it with `dsrepo create --db URL`")
        return cls(directory, url, make_engine(url))

    # -- transactions -----------------------------------------------------------------------

    @contextmanager
    def writing(self, exclusive: bool = False) -> Iterator[Connection]:
        """One transaction for one user action (an import, a commit, ...); `exclusive` waits
        for every other writer (see `store.engine.write_transaction`). The cyclic garbage
        collector is paused meanwhile (see `repo._internal.gcpause`)."""
        with collector_paused(), write_transaction(self.engine, exclusive) as connection:
            yield connection

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """One read transaction: a consistent view of the last committed state."""
        with collector_paused(), read_transaction(self.engine) as connection:
            yield connection

    def refresh_statistics(self) -> None:
        """Called after imports, updates and merges (see `store.engine.refresh_statistics`)."""
        refresh_statistics(self.engine, [table.name for table in VERSIONED])

    @property
    def shown_url(self) -> str:
        """The database URL as it may be shown: the password masked."""
        return masked(self.url)

    def close(self) -> None:
        """Release the database connections (a project is also a context manager)."""
        self.engine.dispose()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sqlite_owner(url: str) -> str | None:
    """The dsrepo project an existing SQLite file holds, if it is one."""
    engine = make_engine(url, read_only=True)
    try:
        with read_transaction(engine) as connection:
            return existing_project(connection)
    except (SQLAlchemyError, DsrepoError):  # not a SQLite database at all
        return None
    finally:
        engine.dispose()


def _remember(config: Path, url: str) -> None:
    """Write {"db": URL}; private to its owner when the URL holds a password."""
    mode = 0o600 if make_url(url).password else 0o644
    descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(json.dumps({"db": url}) + "\n")
