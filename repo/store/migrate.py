"""Schema versions of a project database, managed by Alembic.

The migration scripts ship inside the package (`repo.migrations`, the repository's top-level
`migrations/` folder), so `upgrade` works from any install. Every command checks the
project's revision first; that check reads the `alembic_version` table and the revision ids
the scripts declare, without loading Alembic (a quarter of a second at every start): Alembic
is imported only when a migration runs. `create` runs none: it builds the newest schema
from `repo.store.schema` and `repo.store.views` and records the newest revision, as Alembic
would have after running every script (tests compare the two schemas on both databases).
"""

from __future__ import annotations

import ast
import functools
import re
from importlib.resources import files
from typing import TYPE_CHECKING

from sqlalchemy import Column, Connection, MetaData, PrimaryKeyConstraint, String, Table, inspect, text

from repo.errors import SchemaError
from repo.store import views
from repo.store.readers import ensure_reader
from repo.store.schema import metadata

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "alembic_version"  # where Alembic records a database's revision
# That table as Alembic makes it (alembic.runtime.migration.MigrationContext).
_VERSION = Table(
    VERSION_TABLE, MetaData(), Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
)
_DECLARATION = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("repo.migrations")))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _chain() -> dict[str, str | None]:
    """Each migration script's revision id -> the revision it follows (None for the first)."""
    chain: dict[str, str | None] = {}
    for script in files("repo.migrations").joinpath("versions").iterdir():
        if not script.name.endswith(".py") or script.name.startswith("__"):
            continue
        declared = {name: ast.literal_eval(value) for name, value in _DECLARATION.findall(script.read_text("utf-8"))}
        chain[declared["revision"]] = declared.get("down_revision")
    return chain


def latest_schema_revision() -> str:
    """The head of the scripts' chain: the one revision no other script follows."""
    chain = _chain()
    heads = set(chain) - set(chain.values())
    assert len(heads) == 1, f"the migration scripts have {len(heads)} heads: {sorted(heads)}"
    return heads.pop()


def schema_revision(connection: Connection) -> str | None:
    """The revision Alembic recorded in the database, None if it holds no schema."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


def create_schema(connection: Connection) -> None:
    """Build the newest schema in an empty database, stamped with the newest revision.

    What running every migration from the first builds, without importing Alembic, whose
    import alone (0.1 s) took longer than the rest of `create`. One difference: the reader
    role is granted every table, as `upgrade` grants them; the migrations left out
    `panoptic_pngs`, made after the migration that makes the reader."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.exec_driver_sql("CREATE SEQUENCE dsrepo_row_ids")  # row ids (migration 0001)
    _VERSION.create(connection)
    connection.execute(_VERSION.insert().values(version_num=latest_schema_revision()))
    metadata.create_all(connection, checkfirst=False)
    for statement in views.create_statements(dialect):
        connection.exec_driver_sql(statement)
    ensure_reader(connection)


def check_current(connection: Connection, where: str) -> str:
    """The schema revision, if this version of dsrepo can use it; else a SchemaError."""
    current = schema_revision(connection)
    head = latest_schema_revision()
    if current == head:
        return current
    if current is None:
        raise SchemaError(f"{where} is not a dsrepo project (no schema); create one with `dsrepo create`")
    if current in _chain():
        raise SchemaError(
            f"{where} has the older schema {current} (this dsrepo needs {head}); "
            "run `dsrepo upgrade` to migrate it"
        )
    raise SchemaError(
        f"{where} has schema {current}, newer than this dsrepo knows ({head}); upgrade dsrepo"
    )
