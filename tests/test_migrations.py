"""Schema migrations: a project made by an older dsrepo upgrades with its data intact, and a
database is refused for `create` when it already holds a project, naming that project.

`create` builds the newest schema directly, without running the migrations (see
`repo.store.migrate.create_schema`): running every migration from the first must build the
same schema, object for object, on SQLite and on PostgreSQL, so that later migrations (written
against the migrated schema) work on created projects too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, Engine, inspect, text

from helpers import DATA, Backend, assert_same_file
from repo.errors import ConflictError, SchemaError
from repo.exporting import export_dataset
from repo.importing import import_dataset
from repo.project import Project
from repo.store import migrate, readers
from repo.store.engine import create_sqlite_file, make_engine, normalize_url, read_transaction, sqlite_url, write_transaction
from repo.store.identity import record_identity

INSTANCES = DATA / "datumaro_coco" / "coco_instances"


def test_a_0002_project_upgrades_with_its_data(backend, tmp_path, cli):
    """Revision 0003 renames annotations.num_flags: integers must stay integers after it."""
    project = backend.create()
    import_dataset(project, "coco_instances", INSTANCES, name="a")
    with project.writing() as connection:
        command.downgrade(migrate.alembic_config(connection), "0002")
    with pytest.raises(SchemaError, match="has the older schema 0002"):
        Project.open(project.directory)
    result = cli("upgrade", "-p", project.directory)
    assert result.output == f"schema 0002 -> {migrate.latest_schema_revision()}\n"
    export_dataset(Project.open(project.directory), "coco_instances", tmp_path / "out")
    for name in ("instances_train.json", "instances_val.json"):
        assert_same_file(INSTANCES / "annotations" / name, tmp_path / "out" / "annotations" / name)


def test_create_names_the_project_a_database_holds(backend, tmp_path):
    first = backend.create("first")
    url = first.url
    with pytest.raises(ConflictError) as refused:
        Project.create(tmp_path / "second", url)
    assert f"holds the dsrepo project 'first' (folder {first.directory.resolve()})" in str(refused.value)
    assert not (tmp_path / "second").exists()


def _rows(connection: Connection, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in connection.execute(text(sql), params)]


def _sqlite_schema(connection: Connection) -> dict[Any, Any]:
    """What SQLite says about each object: a table's columns (in order), its indexes and keys,
    AUTOINCREMENT; an index's columns and SQL; a view's or trigger's SQL. Not the CREATE TABLE
    text: a column added by ALTER TABLE is written into it differently, to the same effect."""
    described: dict[Any, Any] = {
        "pragmas": [_rows(connection, f"PRAGMA {name}") for name in ("user_version", "application_id", "journal_mode")],
    }
    objects = _rows(connection, "SELECT type, name, tbl_name, sql FROM sqlite_master")
    for kind, name, table, sql in objects:
        if kind == "table":
            described[kind, name] = (
                _rows(connection, f"PRAGMA table_xinfo('{name}')"),
                sorted(row[1:] for row in _rows(connection, f"PRAGMA index_list('{name}')")),  # without its order
                _rows(connection, f"PRAGMA foreign_key_list('{name}')"),
                _rows(connection, f"PRAGMA table_list('{name}')"),
                "AUTOINCREMENT" in sql.upper(),
            )
        elif kind == "index":
            described[kind, name] = (table, _rows(connection, f"PRAGMA index_xinfo('{name}')"), sql)
        else:
            described[kind, name] = (table, sql)
    return described


_POSTGRESQL_CATALOG = {
    "relations": "SELECT relname, relkind, relpersistence, pg_get_userbyid(relowner), relacl::text FROM pg_class "
                 "WHERE relnamespace = current_schema()::regnamespace ORDER BY 1",
    "columns": "SELECT table_name, ordinal_position, column_name, data_type, character_maximum_length, "
               "numeric_precision, is_nullable, column_default, is_identity, is_generated "
               "FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1, 2",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE connamespace = current_schema()::regnamespace ORDER BY 1, 2",
    "indexes": "SELECT indexname, tablename, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = current_schema() ORDER BY 1",
    "sequences": "SELECT sequencename, data_type, start_value, min_value, max_value, increment_by, cycle, cache_size, "
                 "last_value FROM pg_sequences WHERE schemaname = current_schema() ORDER BY 1",
    "triggers": "SELECT tgname, tgrelid::regclass::text, pg_get_triggerdef(oid) FROM pg_trigger "
                "WHERE NOT tgisinternal ORDER BY 1, 2",
    "functions": "SELECT proname, pg_get_functiondef(oid) FROM pg_proc "
                 "WHERE pronamespace = current_schema()::regnamespace ORDER BY 1, 2",
    "schema privileges": "SELECT nspacl::text FROM pg_namespace WHERE oid = current_schema()::regnamespace",
    "set_config": f"SELECT proacl::text FROM pg_proc WHERE oid = '{readers.SET_CONFIG}'::regprocedure",
    "reader": "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, "
              "rolbypassrls, ARRAY(SELECT pg_get_userbyid(m.member) FROM pg_auth_members m WHERE m.roleid = r.oid "
              "ORDER BY 1), ARRAY(SELECT pg_get_userbyid(m.roleid) FROM pg_auth_members m WHERE m.member = r.oid "
              "ORDER BY 1) FROM pg_roles r WHERE rolname = :reader",
}


def _postgresql_schema(connection: Connection) -> dict[Any, Any]:
    """The catalog's account of the schema. The reader role's name holds the database's OID,
    and a plain role's project has a role of its own: both are written the same for any
    database."""
    reader = readers.reader_name(connection)
    me = connection.execute(text("SELECT current_user")).scalar_one()

    def same_for_any_database(value: Any) -> Any:
        return value.replace(reader, "<reader>").replace(me, "<owner>") if isinstance(value, str) else value

    return {
        what: [tuple(map(same_for_any_database, row)) for row in _rows(connection, sql, reader=reader)]
        for what, sql in _POSTGRESQL_CATALOG.items()
    }


def _schema(connection: Connection) -> dict[Any, Any]:
    return _sqlite_schema(connection) if connection.dialect.name == "sqlite" else _postgresql_schema(connection)


def _row_counts(connection: Connection) -> dict[str, Any]:
    """How many rows each table holds, and the revision recorded: a migration that fills a
    table must have its counterpart in `create` too."""
    counts: dict[str, Any] = {
        table: connection.execute(text(f'SELECT count(*) FROM "{table}"')).scalar()
        for table in inspect(connection).get_table_names()
    }
    counts["revision"] = migrate.schema_revision(connection)
    return counts


def _migrated(backend: Backend, tmp_path: Path) -> Engine:
    """A project database made by running every migration, as `upgrade` leaves it (which
    grants the reader role the tables made after it)."""
    url = backend.new_url()
    if url is None:
        create_sqlite_file(tmp_path / "migrated.db")
        url = sqlite_url(tmp_path / "migrated.db")
    engine = make_engine(normalize_url(url))
    with write_transaction(engine) as connection:
        migrate.upgrade(connection)
        readers.ensure_reader(connection)
        record_identity(connection, "migrated", str(tmp_path))
    return engine


def _assert_create_builds_what_the_migrations_build(backend: Backend, tmp_path: Path) -> None:
    migrated = _migrated(backend, tmp_path)
    try:
        with backend.create() as project, project.reading() as created, read_transaction(migrated) as expected:
            assert _schema(created) == _schema(expected)
            assert _row_counts(created) == _row_counts(expected)
    finally:
        migrated.dispose()


def test_create_builds_the_schema_the_migrations_build(backend, tmp_path):
    _assert_create_builds_what_the_migrations_build(backend, tmp_path)


def test_create_builds_the_schema_the_migrations_build_for_either_postgresql_role(pg_role, tmp_path):
    """A superuser's project has a reader role and set_config revoked; a plain role's has neither."""
    _assert_create_builds_what_the_migrations_build(pg_role, tmp_path)


def test_a_created_project_migrates_down_to_nothing_and_up_again(backend):
    """Alembic takes the created schema for its stamped revision: every downgrade finds what it
    drops, and upgrading from the first revision gives the same schema back."""
    with backend.create() as project:
        with project.reading() as connection:
            created = _schema(connection)
        with project.writing() as connection:
            command.downgrade(migrate.alembic_config(connection), "base")
            assert inspect(connection).get_table_names() == [migrate.VERSION_TABLE]
            assert inspect(connection).get_view_names() == []
            command.upgrade(migrate.alembic_config(connection), "head")
            readers.ensure_reader(connection)
        with project.reading() as connection:
            assert _schema(connection) == created
            assert migrate.schema_revision(connection) == migrate.latest_schema_revision()

