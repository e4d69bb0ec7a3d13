"""Fixtures: every storage test runs on a real SQLite file and on a real PostgreSQL server
(`backend`); `cli` runs dsrepo's command line and checks its exit status.

PostgreSQL comes from DSREPO_TEST_PG_URL (an admin URL; `scripts/test.sh` starts a
throw-away server and sets it). Each test gets databases of its own, dropped afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import settings

from helpers import PG_ENV, Backend, PlainRoleBackend
from repo.cli import main

# Hypothesis: no deadline (database round trips take uneven time); CI runs a fixed, modest set
# of examples, `HYPOTHESIS_PROFILE=dev` a random, ten times larger one to hunt for bugs.
settings.register_profile("ci", deadline=None, derandomize=True, max_examples=100)
settings.register_profile("dev", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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


@pytest.fixture(params=["superuser", "plain"])
def pg_role(request: pytest.FixtureRequest, tmp_path: Path, pg_admin_url: str) -> Iterator[Backend]:
    """PostgreSQL projects made and used as the superuser, or as a plain role that owns its
    database (no CREATEROLE, no server powers)."""
    kind = Backend if request.param == "superuser" else PlainRoleBackend
    backend = kind(f"postgresql-{request.param}", tmp_path, pg_admin_url)
    yield backend
    backend.drop_all()


class Cli:
    """`dsrepo ARGS` in this process (click's runner). Every call states the exit status it
    expects (0 unless `code=` says otherwise), so a setup step that fails cannot go unnoticed."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: object, code: int = 0) -> Result:
        arguments = [str(arg) for arg in args]
        result = self.runner.invoke(main, arguments)
        if result.exit_code != code:
            crash = "" if isinstance(result.exception, SystemExit) or result.exception is None else repr(result.exception)
            raise AssertionError(
                f"dsrepo {' '.join(arguments)}: exit {result.exit_code}, expected {code}\n{result.output}{crash}"
            )
        return result

    def text(self, *args: object, code: int = 0) -> str:
        """What the command said: its output on success, its error message on failure."""
        result = self(*args, code=code)
        return result.stderr if code else result.stdout


@pytest.fixture
def cli() -> Cli:
    return Cli()


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their database explicitly; a DSREPO_DB from the shell must not leak in."""
    monkeypatch.delenv("DSREPO_DB", raising=False)
