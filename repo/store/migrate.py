"""Schema versions of a project database, managed by Alembic.

The migration scripts ship inside the package (`repo.migrations`, the repository's top-level
`migrations/` folder), so `create` and `upgrade` work from any install.
"""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from repo.errors import SchemaError


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("repo.migrations")))
    config.attributes["connection"] = connection
    return config


def latest_schema_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def schema_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def check_current(connection: Connection, where: str) -> str:
    """The schema revision, if this version of dsrepo can use it; else a SchemaError."""
    current = schema_revision(connection)
    head = latest_schema_revision()
    if current == head:
        return current
    if current is None:
        raise SchemaError(f"{where} is not a dsrepo project (no schema); create one with `dsrepo create`")
    known = {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if current in known:
        raise SchemaError(
            f"{where} has the older schema {current} (this dsrepo needs {head}); "
            "run `dsrepo upgrade` to migrate it"
        )
    raise SchemaError(
        f"{where} has schema {current}, newer than this dsrepo knows ({head}); upgrade dsrepo"
    )
