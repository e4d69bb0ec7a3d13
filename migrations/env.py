"""Alembic environment for dsrepo project databases.

dsrepo itself passes an open connection (so `create` and `upgrade` run inside its own
transaction); the `alembic` command line takes the URL from `-x db=URL`, then DSREPO_DB.
SQLite migrations run in batch mode, since SQLite cannot alter most things in place.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from repo.store.engine import normalize_url
from repo.store.schema import metadata

config = context.config


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("db") or os.environ.get("DSREPO_DB")
    if not url:
        raise SystemExit("no database: pass -x db=URL or set DSREPO_DB")
    return normalize_url(url)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=NullPool)
    with engine.connect() as connection:
        _run(connection)


if context.is_offline_mode():
    raise SystemExit("dsrepo migrations run online only")
run_migrations_online()
