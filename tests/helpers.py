"""What the tests share: the test data, projects on either database (Backend), and oracles:
strict JSON equality, database contents, masks via pycocotools."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools.coco import COCO
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from click.testing import CliRunner, Result

from repo.cli import main
from repo.project import Project

PG_ENV = "DSREPO_TEST_PG_URL"
DATA = Path(__file__).parent / "data"


@dataclass
class Backend:
    """Makes projects on one kind of database and knows how to address them."""

    name: str
    tmp: Path
    admin_url: str | None = None
    databases: list[str] = field(default_factory=list)

    def new_url(self) -> str | None:
        """A fresh, empty database: None means SQLite's default `DIR/project.db`."""
        if self.admin_url is None:
            return None
        database = f"dsrepo_test_{uuid.uuid4().hex[:12]}"
        engine = create_engine(self.admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{database}"'))
        engine.dispose()
        self.databases.append(database)
        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def create(self, name: str = "project") -> Project:
        return Project.create(self.tmp / name, self.new_url())

    def create_args(self, name: str = "project") -> list[str]:
        """CLI arguments for `dsrepo create` of a new project folder."""
        url = self.new_url()
        return ["-p", str(self.tmp / name)] + (["--db", url] if url else [])

    def drop_all(self) -> None:
        """Drop the test's databases, and the reader role `create` made for each (roles are
        cluster-wide and outlive their database)."""
        if self.admin_url is None or not self.databases:
            return
        engine = create_engine(self.admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            for database in self.databases:
                oid = connection.execute(text("SELECT oid FROM pg_database WHERE datname = :d"), {"d": database}).scalar()
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
                if oid is not None:
                    connection.execute(text(f'DROP ROLE IF EXISTS "dsrepo_reader_{oid}"'))
        engine.dispose()


@dataclass
class PlainRoleBackend(Backend):
    """PostgreSQL databases each owned by a new login role that is neither superuser nor
    CREATEROLE: the least a dsrepo user needs, and a role with no server powers to drop."""

    roles: list[str] = field(default_factory=list)

    def new_url(self) -> str | None:
        assert self.admin_url is not None
        role = f"dsrepo_plain_{uuid.uuid4().hex[:12]}"
        database = f"dsrepo_test_{uuid.uuid4().hex[:12]}"
        engine = create_engine(self.admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB'))
            connection.execute(text(f'CREATE DATABASE "{database}" OWNER "{role}"'))
        engine.dispose()
        self.roles.append(role)
        self.databases.append(database)
        url = make_url(self.admin_url).set(username=role, password=None, database=database)
        return url.render_as_string(hide_password=False)

    def drop_all(self) -> None:
        super().drop_all()
        if not self.roles:
            return
        assert self.admin_url is not None
        engine = create_engine(self.admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            for role in self.roles:
                connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        engine.dispose()


def json_difference(expected: Any, actual: Any, path: str = "$") -> str | None:
    """Where two parsed JSON values differ, or None; 3 and 3.0 differ, as do true and 1."""
    if type(expected) is not type(actual):
        return f"{path}: {type(expected).__name__} {expected!r} != {type(actual).__name__} {actual!r}"
    if isinstance(expected, dict):
        if set(expected) != set(actual):
            return f"{path}: keys differ: {sorted(set(expected) ^ set(actual))}"
        for key in expected:
            found = json_difference(expected[key], actual[key], f"{path}.{key}")
            if found:
                return found
    elif isinstance(expected, list):
        if len(expected) != len(actual):
            return f"{path}: {len(expected)} elements != {len(actual)}"
        for index, (left, right) in enumerate(zip(expected, actual)):
            found = json_difference(left, right, f"{path}[{index}]")
            if found:
                return found
    elif expected != actual:
        return f"{path}: {expected!r} != {actual!r}"
    return None


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8-sig"))  # a byte order mark is allowed


def assert_same_file(expected: Path, actual: Path) -> None:
    difference = json_difference(load_json(expected), load_json(actual))
    assert difference is None, f"{actual} differs from {expected}: {difference}"


def id_map(path: Path) -> np.ndarray:
    """A panoptic PNG as segment ids (R + 256 G + 256^2 B), decoded with Pillow and numpy."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint32)
    return rgb[..., 0] + (rgb[..., 1] << 8) + (rgb[..., 2] << 16)


def database_contents(project: Project) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, and the schema: what "the database is unchanged" compares."""
    contents: dict[str, list[tuple[Any, ...]]] = {}
    with project.engine.connect() as connection:
        inspector = inspect(connection)
        for table in sorted(inspector.get_table_names()):
            columns = [c["name"] for c in inspector.get_columns(table)]
            contents[f"schema:{table}"] = [tuple(columns)]
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()
            contents[table] = sorted((tuple(row) for row in rows), key=repr)
        contents["views"] = [tuple(sorted(inspector.get_view_names()))]
    return contents


def masks_of(annotation_file: Path) -> dict[int, np.ndarray]:
    """Each annotation's mask as pycocotools loads and draws it (polygons and both RLE forms)."""
    dataset = COCO(str(annotation_file))
    return {
        annotation_id: dataset.annToMask(annotation)
        for annotation_id, annotation in dataset.anns.items()
        if annotation.get("segmentation")
    }


def row_count(project: Project, table: str) -> int:
    with project.engine.connect() as connection:
        return connection.execute(select(text("count(*)")).select_from(text(table))).scalar_one()


def invoke(*args: Any, code: int | None = 0) -> Result:
    """`dsrepo ARGS` in-process; its exit code checked unless `code` is None."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    if code is not None:
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def assert_one_line_error(result: Result, prefix: str = "") -> None:
    """Exit 1, one line on stderr that starts with `Error: PREFIX`, no traceback."""
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stderr.startswith(f"Error: {prefix}"), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
