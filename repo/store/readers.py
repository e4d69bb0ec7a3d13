"""Reader roles: the PostgreSQL role that SQL written by users runs as.

`query`, `export --where` and the web app run SQL that users write. The role dsrepo connects
as may hold powers no such statement should have: a superuser reads and writes the server's
files, runs programs there, terminates other sessions. So each project database gets a role
of its own that logs in nowhere, owns nothing, belongs to no other role and may only SELECT
the project's tables and views; user SQL runs after `SET LOCAL ROLE` to it.

- One role per project database, named `dsrepo_reader_<database oid>`. Roles are
  cluster-wide: a reader shared by several projects would let the user of one read the
  others. The OID is unique among the live databases of a cluster, so the name needs no
  storage, and it is recomputed, never trusted from a table a user could write.
- A statement running under SET ROLE can switch back to the session's role with
  `set_config('role', ...)` (the session's own role is always allowed), and then, through
  functions that run SQL of their own (query_to_xml), use every power of that role. When
  the role that makes the reader is a superuser, it therefore revokes EXECUTE on set_config
  from PUBLIC in the project database (and grants it back to the database's owner): the
  reader cannot call it, in any statement, however deeply nested.
- A role without CREATEROLE cannot make a reader; it has no server powers to drop either,
  so its statements run as itself (still read-only, rolled back and time-limited). A role
  with powers and no reader to switch to is refused with a message saying how to fix it
  (`dsrepo upgrade` as a role that can create roles).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from repo.errors import QueryError

PREFIX = "dsrepo_reader_"
SET_CONFIG = "pg_catalog.set_config(text, text, boolean)"

# Predefined roles whose members may touch the server's files, programs or other sessions,
# or every table: powers a query must not borrow.
POWERFUL_ROLES = (
    "pg_read_server_files", "pg_write_server_files", "pg_execute_server_program", "pg_signal_backend",
    "pg_read_all_data", "pg_write_all_data",
)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def reader_name(connection: Connection) -> str:
    oid = connection.execute(text("SELECT oid FROM pg_database WHERE datname = current_database()")).scalar_one()
    return f"{PREFIX}{oid}"


def ensure_reader(connection: Connection) -> str | None:
    """Make this database's reader role, or bring its grants up to date; its name, or None
    where there is none (SQLite; a role that can neither create roles nor find one made).

    Run by `create` (and by the migration that introduced readers) and by every `upgrade`,
    in their transaction: a later migration's new tables and views get granted too."""
    if connection.dialect.name != "postgresql":
        return None
    me = connection.execute(text(
        "SELECT rolname, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user"
    )).one()
    name = reader_name(connection)
    exists = connection.execute(text("SELECT count(*) FROM pg_roles WHERE rolname = :n"), {"n": name}).scalar_one()
    if not exists:
        if not (me.rolsuper or me.rolcreaterole):
            return None
        connection.execute(text(
            f"CREATE ROLE {_quoted(name)} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT "
            "NOREPLICATION NOBYPASSRLS"
        ))
    if me.rolsuper or me.rolcreaterole:
        _admit_members(connection, name)
    _grant_reading(connection, name)
    if me.rolsuper:
        _close_the_way_back(connection)
    return name


def _admit_members(connection: Connection, name: str) -> None:
    """The roles that may SET ROLE to the reader: the one making it and the database's owner
    (superusers need no membership)."""
    members = connection.execute(text(
        "SELECT r.rolname FROM pg_roles r WHERE NOT r.rolsuper AND NOT pg_has_role(r.oid, :n, 'MEMBER') "
        "AND (r.rolname = current_user OR r.oid = (SELECT datdba FROM pg_database WHERE datname = current_database()))"
    ), {"n": name}).scalars().all()
    for member in members:
        connection.execute(text(f"GRANT {_quoted(name)} TO {_quoted(member)}"))


def _grant_reading(connection: Connection, name: str) -> None:
    """SELECT on every table and view of the project's schema that this role may grant."""
    schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    if not connection.execute(text("SELECT has_schema_privilege(:r, :s, 'USAGE')"), {"r": name, "s": schema}).scalar():
        connection.execute(text(f"GRANT USAGE ON SCHEMA {_quoted(schema)} TO {_quoted(name)}"))
    relations = connection.execute(text(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
        "AND c.relkind IN ('r', 'v', 'm', 'p') AND pg_has_role(current_user, c.relowner, 'USAGE') "
        "AND NOT has_table_privilege(:r, c.oid, 'SELECT') ORDER BY c.relname"
    ), {"r": name}).scalars().all()
    for relation in relations:
        connection.execute(text(f"GRANT SELECT ON {_quoted(schema)}.{_quoted(relation)} TO {_quoted(name)}"))


def _close_the_way_back(connection: Connection) -> None:
    connection.execute(text(f"REVOKE EXECUTE ON FUNCTION {SET_CONFIG} FROM PUBLIC"))
    owner = connection.execute(text(
        "SELECT r.rolname FROM pg_roles r JOIN pg_database d ON d.datdba = r.oid "
        "WHERE d.datname = current_database() AND NOT r.rolsuper"
    )).scalar()
    if owner is not None:
        connection.execute(text(f"GRANT EXECUTE ON FUNCTION {SET_CONFIG} TO {_quoted(owner)}"))


def drop_reader(connection: Connection) -> None:
    """Undo `ensure_reader` as far as this role may (the migration's downgrade)."""
    if connection.dialect.name != "postgresql":
        return
    me = connection.execute(text("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")).one()
    name = reader_name(connection)
    exists = connection.execute(text("SELECT count(*) FROM pg_roles WHERE rolname = :n"), {"n": name}).scalar_one()
    if exists and (me.rolsuper or me.rolcreaterole):
        connection.execute(text(f"DROP OWNED BY {_quoted(name)}"))  # its grants in this database
        connection.execute(text(f"DROP ROLE {_quoted(name)}"))
    if me.rolsuper:
        connection.execute(text(f"GRANT EXECUTE ON FUNCTION {SET_CONFIG} TO PUBLIC"))


def role_for_user_sql(connection: Connection, what: str) -> str | None:
    """The role a user's statement must run as, or None to run as the connected role.

    Refuses, with one line saying how to fix it, when the connected role holds powers a
    query must not have and cannot drop them."""
    session = connection.execute(text(
        "SELECT r.rolname, r.rolsuper, r.rolcreaterole, ARRAY(SELECT g.rolname FROM pg_roles g "
        "WHERE g.rolname = ANY(:powerful) AND pg_has_role(r.oid, g.oid, 'MEMBER') ORDER BY g.rolname) AS member_of "
        "FROM pg_roles r WHERE r.rolname = session_user"
    ), {"powerful": list(POWERFUL_ROLES)}).one()
    powers = (["superuser"] if session.rolsuper else list(session.member_of)) + \
        (["CREATEROLE"] if session.rolcreaterole else [])
    name = reader_name(connection)
    reader = connection.execute(text(
        "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolcanlogin OR rolreplication OR rolbypassrls "
        "OR EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid) AS powerful, "
        "pg_has_role(session_user, r.oid, 'MEMBER') AS usable, "
        f"has_function_privilege(r.oid, '{SET_CONFIG}', 'EXECUTE') AS can_set "
        "FROM pg_roles r WHERE r.rolname = :n"
    ), {"n": name}).first()
    if reader is not None and reader.usable:
        if reader.powerful:
            raise QueryError(
                f"{what}: refused: the reader role {name} has powers or memberships of its own; "
                f"drop it (DROP OWNED BY {name}; DROP ROLE {name}) and run `dsrepo upgrade` to make it again"
            )
        borrowed = [power for power in powers if power != "CREATEROLE"]  # CREATEROLE needs a utility statement
        if reader.can_set and borrowed:
            raise QueryError(
                f"{what}: refused: the reader role {name} can still call set_config() and take back the powers "
                f"of role '{session.rolname}' ({', '.join(borrowed)}); run `dsrepo upgrade` once as a superuser "
                "(it revokes set_config from PUBLIC in this database)"
            )
        return name
    if powers:
        raise QueryError(
            f"{what}: refused: the database role '{session.rolname}' has powers a query must not have "
            f"({', '.join(powers)}) and this project has no reader role to drop them for; run `dsrepo upgrade` once "
            "as a role that can create roles, or connect as a role without these powers"
        )
    return None
