"""Fixtures: every storage test runs on a real SQLite file and on a real PostgreSQL server.

PostgreSQL comes from DSREPO_TEST_PG_URL (an admin URL; `scripts/test.sh` starts a
throw-away server and sets it). Each test gets databases of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from repo.project import Project

PG_ENV = "DSREPO_TEST_PG_URL"
DATA = Path(__file__).parent / "data"

# Hypothesis: no deadline (database round trips take uneven time); CI runs a fixed, modest set
# of examples, `HYPOTHESIS_PROFILE=dev` a random, ten times larger one to hunt for bugs.
settings.register_profile("ci", deadline=None, derandomize=True, max_examples=100)
settings.register_profile("dev", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
        if self.admin_url is None or not self.databases:
            return
        engine = create_engine(self.admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            for database in self.databases:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.fail(f"{PG_ENV} is not set: run the tests with `bash scripts/test.sh`, which starts PostgreSQL")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    admin_url = request.getfixturevalue("pg_admin_url") if request.param == "postgresql" else None
    backend = Backend(request.param, tmp_path, admin_url)
    yield backend
    backend.drop_all()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their database explicitly; a DSREPO_DB from the shell must not leak in."""
    monkeypatch.delenv("DSREPO_DB", raising=False)
