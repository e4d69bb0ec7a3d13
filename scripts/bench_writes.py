"""dsrepo's database writes against the raw driver inserting the very same rows.

One COCO file is imported through the Python API with `repo.store.bulk.insert_rows` timed and
its rows kept; those rows are then inserted again into a fresh project of the same schema
(indexes included) by the bare driver, in one transaction: sqlite3 `executemany` on SQLite,
psycopg `COPY` on PostgreSQL. The ratio says how much dsrepo's write path adds to the driver
(building tuples, serialising JSON values); the rest of an import (parse, validation) is not in
either figure.

Usage: python scripts/bench_writes.py FILE.json [--format coco_instances] [--pg-url ADMIN_URL]
       [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import repo.store.bulk as bulk
from repo.importing import import_dataset
from repo.model.jsonio import dumps_text
from repo.project import Project
from repo.store import schema
from repo.store.engine import normalize_url


@dataclass
class Capture:
    """What insert_rows was asked to write, as the tuples the driver received, and how long it took."""
    seconds: float = 0.0
    rows: list[tuple[str, list[tuple[Any, ...]]]] = field(default_factory=list)

    def wrap(self, insert_rows):
        def timed_insert_rows(connection: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
            start = time.perf_counter()
            insert_rows(connection, table, rows)
            self.seconds += time.perf_counter() - start
            names = [column.name for column in table.c]
            self.rows.append((table.name, [tuple(row.get(name) for name in names) for row in rows]))

        return timed_insert_rows


@contextmanager
def timing_inserts(capture: Capture) -> Iterator[None]:
    """Route every repo module's reference to insert_rows through the capture, for a while."""
    original = bulk.insert_rows
    users = [module for name, module in list(sys.modules.items())
             if name.startswith("repo.") and getattr(module, "insert_rows", None) is original]
    for module in users:
        module.insert_rows = capture.wrap(original)
    try:
        yield
    finally:
        for module in users:
            module.insert_rows = original


def raw_insert(project: Project, captured: list[tuple[str, list[tuple[Any, ...]]]]) -> float:
    """The captured rows again, by the bare driver, in one transaction; JSON values serialised
    the way the driver needs them outside the timing (a floor, not a rival implementation)."""
    with project.writing() as connection:
        raw = connection.connection.driver_connection
        postgres = connection.dialect.name == "postgresql"
        prepared = []
        for table_name, rows in captured:
            table = schema.metadata.tables[table_name]
            json_columns = [isinstance(column.type, sa.JSON) for column in table.c]
            tuples = [tuple(dumps_text(value) if is_json and value is not None else value
                            for value, is_json in zip(row, json_columns)) for row in rows]
            prepared.append((table_name, [column.name for column in table.c], tuples))
        start = time.perf_counter()
        for table_name, names, tuples in prepared:
            columns = ", ".join(names)
            if postgres:
                with raw.cursor() as cursor, cursor.copy(f"COPY {table_name} ({columns}) FROM STDIN") as copy:
                    for values in tuples:
                        copy.write_row(values)
            else:
                raw.executemany(f"INSERT INTO {table_name} ({columns}) VALUES ({', '.join('?' * len(names))})", tuples)
        return time.perf_counter() - start


class Databases:
    """A fresh project per measurement: a SQLite file, or a new database on a PostgreSQL server."""

    def __init__(self, work: Path, pg_url: str | None):
        self.work, self.names = work, []
        self.admin = sa.create_engine(normalize_url(pg_url), isolation_level="AUTOCOMMIT", poolclass=NullPool) \
            if pg_url else None

    def project(self, name: str) -> Project:
        if self.admin is None:
            return Project.create(self.work / name)
        with self.admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        url = self.admin.url.set(database=name).render_as_string(hide_password=False)
        return Project.create(self.work / name, db=url)

    def drop_all(self) -> None:
        if self.admin is not None:
            with self.admin.connect() as connection:
                for name in self.names:
                    connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def measure(path: Path, format_name: str, databases: Databases, attempt: int) -> tuple[float, float, int]:
    """(dsrepo insert_rows seconds, raw driver seconds, rows) for one import of `path`."""
    view = databases.work / f"view{attempt}" / "annotations"
    view.mkdir(parents=True)
    (view / path.name).symlink_to(path.resolve())
    capture = Capture()
    project = databases.project(f"bench_writes_dsrepo_{attempt}")
    with timing_inserts(capture):
        import_dataset(project, format_name, view.parent, relpath=f"annotations/{path.name}")
    project.close()
    floor = databases.project(f"bench_writes_raw_{attempt}")
    seconds = raw_insert(floor, capture.rows)
    floor.close()
    return capture.seconds, seconds, sum(len(rows) for _, rows in capture.rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--format", default="coco_instances")
    parser.add_argument("--pg-url", help="also measure on fresh databases of this PostgreSQL server (admin URL)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    for backend, url in [("sqlite", None)] + ([("postgresql", args.pg_url)] if args.pg_url else []):
        work = Path(tempfile.mkdtemp(prefix="dsrepo-writes-"))
        databases = Databases(work, url)
        try:
            figures = [measure(args.file, args.format, databases, attempt) for attempt in range(args.repeat)]
        finally:
            databases.drop_all()
            shutil.rmtree(work, ignore_errors=True)
        dsrepo, raw, rows = min(f[0] for f in figures), min(f[1] for f in figures), figures[0][2]
        print(f"writes/{backend}: dsrepo {dsrepo:.2f} s, raw driver {raw:.2f} s for the same {rows} rows: "
              f"{dsrepo / raw:.2f}x the driver floor", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
