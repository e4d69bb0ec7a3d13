"""Security: what user SQL (`query`, `export --where`) may do, image files reached through
symlinks, unsafe subset names, and the password in dsrepo.json.

"Read-only" means: no write to the database, nothing committed, and no effect outside it
(no file written or read on the server, no large object left, no other session killed, no
setting that outlives the statement). On PostgreSQL every probe runs twice: as the server's
superuser (whose powers `query` must drop) and as a plain role that owns its database (which
has none to drop). Each probe must end with exit 0 and no lasting effect, or with one line
on stderr and exit 1; the database must be unchanged either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import Result
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from gen_coco import generate
from helpers import DATA, Backend, PlainRoleBackend
from helpers import assert_one_line_error, invoke
from helpers import database_contents, load_json
from repo.importing import import_dataset
from repo.project import Project
from repo.store.migrate import alembic_config

ROOT = Path(__file__).resolve().parents[1]
INSTANCES = DATA / "datumaro_coco" / "coco_instances"
SECRET = b"TOP SECRET: not part of any dataset\n"


# -- running dsrepo ---------------------------------------------------------------------------

def run(*args: Any, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`dsrepo ARGS` as a subprocess: for commands that might never end."""
    environment = {key: value for key, value in os.environ.items() if key != "DSREPO_DB"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "repo.cli", *map(str, args)], cwd=ROOT, env=environment,
        capture_output=True, text=True, timeout=timeout,
    )


# -- PostgreSQL as an administrator sees it ------------------------------------------------------

def admin_url(project: Project, admin: str) -> str:
    """The superuser's URL to the project's database."""
    return make_url(admin).set(database=make_url(project.url).database).render_as_string(hide_password=False)


def admin_scalar(url: str, sql: str, **params: Any) -> Any:
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


@dataclass
class ServerState:
    """What a probe could change on the server besides the project's tables."""

    large_objects: list[tuple[int, bytes]]
    config_loaded: Any

    @classmethod
    def of(cls, url: str) -> "ServerState":
        engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                objects = connection.execute(text(
                    "SELECT oid, lo_get(oid) FROM pg_largeobject_metadata ORDER BY oid"
                )).all()
                loaded = connection.execute(text("SELECT pg_conf_load_time()")).scalar()
        finally:
            engine.dispose()
        return cls([(oid, bytes(data)) for oid, data in objects], loaded)


class Victim:
    """A superuser session on the project's database that a probe may try to kill."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self.connection = self.engine.connect()
        self.pid = self.connection.execute(text("SELECT pg_backend_pid()")).scalar()

    def alive(self) -> bool:
        try:
            return self.connection.execute(text("SELECT 1")).scalar() == 1
        except Exception:  # noqa: BLE001 - a killed session fails in driver-specific ways
            return False

    def close(self) -> None:
        try:
            self.connection.close()
        finally:
            self.engine.dispose()


@pytest.fixture
def marker() -> Iterator[Path]:
    """A path the server's OS user could write to (tmp_path is private to the test's user)."""
    path = Path("/tmp") / f"dsrepo-probe-{uuid.uuid4().hex}"
    yield path
    path.unlink(missing_ok=True)


@dataclass
class PgProject:
    project: Project
    admin: str  # the superuser's URL to the project's database
    lo_oid: int  # a large object the superuser made, holding b"abc"
    victim: Victim


@pytest.fixture(scope="module", params=["superuser", "plain"])
def pg_shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              pg_admin_url: str) -> Iterator[Project]:
    """One project per role for all probes of this module (each probe must leave it as it
    was, and checks that it did): made by the superuser, or by a plain role owning its
    database."""
    kind = Backend if request.param == "superuser" else PlainRoleBackend
    backend = kind(f"postgresql-{request.param}", tmp_path_factory.mktemp(request.param), pg_admin_url)
    project = backend.create()
    import_dataset(project, "coco", INSTANCES, name="base")
    yield project
    project.close()
    backend.drop_all()


@pytest.fixture
def pg_project(pg_shared: Project, pg_admin_url: str) -> Iterator[PgProject]:
    admin = admin_url(pg_shared, pg_admin_url)
    lo_oid = admin_scalar(admin, "SELECT lo_from_bytea(0, 'abc')")
    victim = Victim(admin)
    try:
        yield PgProject(pg_shared, admin, lo_oid, victim)
    finally:
        victim.close()
        admin_scalar(admin, "SELECT count(lo_unlink(oid)) FROM pg_largeobject_metadata")


# -- query and --where on PostgreSQL ------------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    sql: str  # formatted with {lo}, {pid}, {marker}
    secret: str | None = None  # text that must not reach stdout
    refused: bool = False  # must end with exit 1 (it could read what it must not)


# A line of the server's postgresql.conf (written by scripts/test.sh): proof of a file read.
SERVER_FILE = "postgresql.conf"
SERVER_SECRET = "listen_addresses"

QUERY_PROBES = {
    "lo_from_bytea": Probe("SELECT lo_from_bytea(0, 'x')"),
    "lo_put": Probe("SELECT lo_put({lo}, 0, 'zzz')"),
    "lo_unlink": Probe("SELECT lo_unlink({lo})"),
    "lo_create_in_cte": Probe("WITH made AS (SELECT lo_create(0) AS oid) SELECT oid FROM made"),
    "copy_to_program": Probe("COPY (SELECT 1) TO PROGRAM 'touch {marker}'", refused=True),
    "copy_to_file": Probe("COPY (SELECT 'leak') TO '{marker}'", refused=True),
    "copy_from_file": Probe("COPY labels FROM '/etc/hostname'", refused=True),
    "pg_read_file": Probe(f"SELECT pg_read_file('{SERVER_FILE}')", secret=SERVER_SECRET, refused=True),
    "lo_import": Probe("SELECT lo_import('/etc/hostname')", refused=True),
    "role_escape": Probe(
        "SELECT set_config('role', session_user, true), "
        f"query_to_xml('SELECT pg_read_file(''{SERVER_FILE}'')', true, false, '')",
        secret=SERVER_SECRET, refused=True,
    ),
    "session_escape": Probe(
        "SELECT set_config('session_authorization', session_user, true), "
        f"query_to_xml('SELECT pg_read_file(''{SERVER_FILE}'')', true, false, '')",
        secret=SERVER_SECRET, refused=True,
    ),
    "pg_terminate_backend": Probe("SELECT pg_terminate_backend({pid})"),
    "pg_reload_conf": Probe("SELECT pg_reload_conf()", refused=True),
    "do_block": Probe("DO $$BEGIN PERFORM lo_from_bytea(0, 'x'); END$$", refused=True),
    "two_statements": Probe("SELECT 1; SELECT lo_from_bytea(0, 'x')", refused=True),
    "writing_cte": Probe("WITH gone AS (DELETE FROM labels RETURNING 1) SELECT count(*) FROM gone", refused=True),
    "set_search_path": Probe("SELECT set_config('search_path', 'pg_temp', false)"),
}


def _check_probe(probe: Probe, pg: PgProject, marker: Path, result: Result, what: str,
                 contents: Any, server: ServerState) -> None:
    if probe.refused or result.exit_code != 0:
        assert_one_line_error(result, what)
    if probe.secret:
        assert probe.secret not in result.stdout
    assert not marker.exists(), "the statement wrote a file on the server"
    assert pg.victim.alive(), "the statement terminated another session"
    assert ServerState.of(pg.admin) == server, "the statement changed large objects or reloaded the configuration"
    assert database_contents(pg.project) == contents


@pytest.mark.parametrize("probe", list(QUERY_PROBES), ids=list(QUERY_PROBES))
def test_pg_query_is_read_only(pg_project, marker, probe):
    """Each probe, run by `dsrepo query` as the superuser or as a plain role, changes nothing
    anywhere: no large object made, changed or removed, no file written or read on the server,
    no session terminated, no configuration reloaded, no row changed."""
    chosen = QUERY_PROBES[probe]
    contents, server = database_contents(pg_project.project), ServerState.of(pg_project.admin)
    sql = chosen.sql.format(lo=pg_project.lo_oid, pid=pg_project.victim.pid, marker=marker)
    result = invoke("query", "-p", pg_project.project.directory, sql, code=None)
    _check_probe(chosen, pg_project, marker, result, "query: ", contents, server)


WHERE_PROBES = {
    "lo_from_bytea": Probe("lo_from_bytea(0, 'x') > 0"),
    "lo_put": Probe("lo_put({lo}, 0, 'zzz') IS NULL"),
    "lo_in_subquery": Probe("row_id IN (SELECT lo_from_bytea(0, 'x'))"),
    "pg_read_file": Probe(f"pg_read_file('{SERVER_FILE}') LIKE '%{SERVER_SECRET}%'", refused=True),
    "role_escape": Probe(
        f"set_config('role', session_user, true) IS NOT NULL AND pg_read_file('{SERVER_FILE}') IS NOT NULL",
        refused=True,
    ),
    "pg_terminate_backend": Probe("pg_terminate_backend({pid})"),
    "second_statement": Probe("1 = 1; DELETE FROM labels", refused=True),
    "set_search_path": Probe("set_config('search_path', 'pg_temp', false) IS NOT NULL"),
    "set_role_session": Probe("set_config('role', 'none', false) IS NOT NULL"),
}


@pytest.mark.parametrize("probe", list(WHERE_PROBES), ids=list(WHERE_PROBES))
def test_pg_where_is_read_only(pg_project, marker, tmp_path, probe):
    """The same for `export --where`: its statement runs inside the export's reading
    transaction, and nothing it does (a large object, a setting such as search_path) may
    reach the database or the export's later statements. An export that succeeds writes
    the files an export without the condition would write."""
    chosen = WHERE_PROBES[probe]
    contents, server = database_contents(pg_project.project), ServerState.of(pg_project.admin)
    condition = chosen.sql.format(lo=pg_project.lo_oid, pid=pg_project.victim.pid, marker=marker)
    out = tmp_path / "out"
    result = invoke("export", "-p", pg_project.project.directory, "-f", "coco", "-o", out, "-q",
                    "--where", condition, code=None)
    _check_probe(chosen, pg_project, marker, result, "--where: ", contents, server)
    if result.exit_code == 0:
        invoke("export", "-p", pg_project.project.directory, "-f", "coco", "-o", tmp_path / "plain", "-q")
        for name in ("instances_train.json", "instances_val.json"):
            exported = load_json(out / "annotations" / name)
            assert exported["images"] == load_json(tmp_path / "plain" / "annotations" / name)["images"]


@pytest.fixture
def pg_backend(pg_admin_url: str, tmp_path: Path) -> Iterator[Backend]:
    backend = Backend("postgresql", tmp_path, pg_admin_url)
    yield backend
    backend.drop_all()


@pytest.fixture
def plain_backend(pg_admin_url: str, tmp_path: Path) -> Iterator[PlainRoleBackend]:
    backend = PlainRoleBackend("postgresql-plain", tmp_path, pg_admin_url)
    yield backend
    backend.drop_all()


def test_pg_query_runs_as_the_project_reader_role(pg_backend, pg_admin_url):
    """As the superuser, a query runs as the project's reader role, which is not the
    session's role, has no powers and may read this project's tables and views."""
    project = pg_backend.create()
    import_dataset(project, "coco", INSTANCES, name="base")
    result = invoke("query", "-p", project.directory, "--format", "json",
                    "SELECT current_user AS reader, session_user AS connected, count(*) AS n FROM annotations_v")
    row = json.loads(result.stdout)[0]
    oid = admin_scalar(admin_url(project, pg_admin_url), "SELECT oid FROM pg_database WHERE datname = current_database()")
    assert row == {"reader": f"dsrepo_reader_{oid}", "connected": "postgres", "n": 3}
    powers = admin_scalar(pg_admin_url, "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolcanlogin OR rolbypassrls "
                                        "FROM pg_roles WHERE rolname = :r", r=row["reader"])
    assert powers is False


def test_pg_reader_roles_are_per_project(pg_backend, pg_admin_url):
    """Roles are cluster-wide: two projects on one server get two reader roles, and one
    project's reader cannot read the other project's tables."""
    first, second = pg_backend.create("first"), pg_backend.create("second")
    readers = []
    for project in (first, second):
        import_dataset(project, "coco", INSTANCES, name="base")
        out = invoke("query", "-p", project.directory, "--format", "json", "SELECT current_user AS r").stdout
        readers.append(json.loads(out)[0]["r"])
    assert readers[0] != readers[1]
    for project, other in ((first, readers[1]), (second, readers[0])):
        allowed = admin_scalar(admin_url(project, pg_admin_url),
                               "SELECT has_table_privilege(:r, 'annotations', 'SELECT') "
                               "OR has_table_privilege(:r, 'annotations_v', 'SELECT')", r=other)
        assert allowed is False


def test_pg_plain_role_creates_imports_exports_and_queries(plain_backend, tmp_path):
    """A role that owns its database and can neither create roles nor anything else: every
    command works, and `query` runs as that role (it has no powers to drop)."""
    args = plain_backend.create_args()
    invoke("create", *args)
    role = make_url(args[3]).username
    invoke("import", "-p", args[1], "-f", "coco", "-n", "base", INSTANCES)
    invoke("export", "-p", args[1], "-f", "coco", "-o", tmp_path / "out", "-q")
    assert (tmp_path / "out" / "annotations" / "instances_val.json").is_file()
    rows = json.loads(invoke("query", "-p", args[1], "--format", "json",
                             "SELECT current_user AS r, count(*) AS n FROM annotations_v").stdout)
    assert rows == [{"r": role, "n": 3}]
    invoke("export", "-p", args[1], "-f", "coco", "-o", tmp_path / "where", "-q", "--where", "label = 'b'")
    assert len(load_json(tmp_path / "where" / "annotations" / "instances_train.json")["annotations"]) == 1


def test_pg_superuser_without_a_reader_role_is_refused_until_upgrade(plain_backend, pg_admin_url, tmp_path):
    """A project made by a plain role has no reader role. The superuser's query there is
    refused with one line saying how to fix it; `dsrepo upgrade` as the superuser makes the
    reader role, and the query then runs as that role."""
    project = plain_backend.create()
    import_dataset(project, "coco", INSTANCES, name="base")
    superuser = admin_url(project, pg_admin_url)
    before = database_contents(project)
    refused = invoke("query", "-p", project.directory, "--db", superuser, "SELECT count(*) FROM annotations_v", code=1)
    assert_one_line_error(refused, "query: ")
    assert "dsrepo upgrade" in refused.stderr
    refused = invoke("export", "-p", project.directory, "--db", superuser, "-f", "coco", "-o", tmp_path / "out",
                     "--where", "label = 'b'", code=1)
    assert_one_line_error(refused, "--where: ")
    assert database_contents(project) == before
    invoke("upgrade", "-p", project.directory, "--db", superuser)
    rows = json.loads(invoke("query", "-p", project.directory, "--db", superuser, "--format", "json",
                             "SELECT current_user AS r, count(*) AS n FROM annotations_v").stdout)
    assert rows[0]["r"].startswith("dsrepo_reader_") and rows[0]["n"] == 3


def test_pg_createrole_role_makes_a_reader_role(pg_admin_url, tmp_path):
    """A role with CREATEROLE (but not superuser) makes the reader role at `create`, and its
    queries run as that role."""
    role = f"dsrepo_creator_{uuid.uuid4().hex[:12]}"
    database = f"dsrepo_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(pg_admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN CREATEROLE'))
        connection.execute(text(f'CREATE DATABASE "{database}" OWNER "{role}"'))
    try:
        url = make_url(pg_admin_url).set(username=role, database=database).render_as_string(hide_password=False)
        invoke("create", "-p", tmp_path / "p", "--db", url)
        invoke("import", "-p", tmp_path / "p", "-f", "coco", "-n", "base", INSTANCES)
        rows = json.loads(invoke("query", "-p", tmp_path / "p", "--format", "json",
                                 "SELECT current_user AS r, count(*) AS n FROM annotations_v").stdout)
        assert rows[0]["r"].startswith("dsrepo_reader_") and rows[0]["n"] == 3
        assert_one_line_error(invoke("query", "-p", tmp_path / "p", f"SELECT pg_read_file('{SERVER_FILE}')", code=1),
                              "query: ")
    finally:
        with engine.connect() as connection:
            oid = connection.execute(text("SELECT oid FROM pg_database WHERE datname = :d"), {"d": database}).scalar()
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            connection.execute(text(f'DROP ROLE IF EXISTS "dsrepo_reader_{oid}"'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        engine.dispose()


def test_reader_role_migration_upgrades_an_older_project(backend, pg_admin_url):
    """A project at schema 0002 (before reader roles) is upgraded by `dsrepo upgrade`: on
    PostgreSQL as the superuser it gets its reader role; on SQLite nothing changes but the
    schema revision."""
    url = backend.new_url()
    directory = backend.tmp / "old"
    directory.mkdir()
    if url is None:
        from repo.store.engine import create_sqlite_file, sqlite_url
        create_sqlite_file(directory / "project.db")
        url = sqlite_url((directory / "project.db").resolve())
    else:
        (directory / "dsrepo.json").write_text(json.dumps({"db": url}))
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0002")
    engine.dispose()
    upgraded = invoke("upgrade", "-p", directory)
    assert upgraded.stdout.startswith("schema 0002 -> ")
    rows = json.loads(invoke("query", "-p", directory, "--format", "json", "SELECT count(*) AS n FROM items_v").stdout)
    assert rows == [{"n": 0}]
    if backend.name == "postgresql":
        project = Project.open(directory)
        oid = admin_scalar(admin_url(project, pg_admin_url), "SELECT oid FROM pg_database WHERE datname = current_database()")
        assert admin_scalar(pg_admin_url, "SELECT count(*) FROM pg_roles WHERE rolname = :r", r=f"dsrepo_reader_{oid}") == 1
        project.close()


# -- query and --where on SQLite ----------------------------------------------------------------

SQLITE_WHERE_PROBES = [
    "row_id IN (SELECT 1 FROM pragma_optimize)",
    "row_id IN (SELECT 1 FROM pragma_table_info('items'))",
    "1 = 1; DELETE FROM labels",
    "load_extension('x') IS NULL",
]


@pytest.mark.parametrize("condition", SQLITE_WHERE_PROBES)
def test_sqlite_where_is_as_read_only_as_query(tmp_path, condition):
    """`--where` gets the same authorizer as `query`: pragma functions (pragma_optimize runs
    ANALYZE and creates sqlite_stat1), a second statement, extensions: one line, exit 1,
    database unchanged."""
    project = Project.create(tmp_path / "project")
    import_dataset(project, "coco", INSTANCES, name="base")
    before = database_contents(project)
    result = invoke("export", "-p", project.directory, "-f", "coco", "-o", tmp_path / "out", "--where", condition,
                    code=None)
    assert_one_line_error(result, "--where: ")
    assert database_contents(project) == before
    assert "sqlite_stat1" not in before and "sqlite_stat1" not in database_contents(project)


def test_sqlite_query_cannot_write_a_file(tmp_path):
    project = Project.create(tmp_path / "project")
    copy = tmp_path / "copy.db"
    for sql in (f"VACUUM INTO '{copy}'", f"ATTACH DATABASE '{copy}' AS other"):
        assert_one_line_error(invoke("query", "-p", project.directory, sql, code=1), "query: ")
    assert not copy.exists()


# -- symlinks: image files must stay inside the dataset folder -------------------------------------

@pytest.fixture
def secret(tmp_path) -> Path:
    """A file outside every dataset folder, and a folder holding it under an image's name."""
    path = tmp_path / "private" / "secret.txt"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    (tmp_path / "private" / "train").mkdir()
    (tmp_path / "private" / "train" / "a.jpg").write_bytes(SECRET)
    return path


def _dataset_with(tmp_path: Path, secret: Path, how: str, name: str = "dataset") -> Path:
    """A copy of coco_instances whose train image a.jpg leads outside: a file symlink, or
    the images/train folder a symlink to a folder holding an a.jpg."""
    dataset = tmp_path / name
    shutil.copytree(INSTANCES, dataset)
    if how == "file":
        (dataset / "images" / "train" / "a.jpg").unlink()
        (dataset / "images" / "train" / "a.jpg").symlink_to(secret)
    elif how == "folder":
        shutil.rmtree(dataset / "images" / "train")
        (dataset / "images" / "train").symlink_to(secret.parent / "train", target_is_directory=True)
    return dataset


def _holds_secret(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and SECRET in p.read_bytes()]


def _stored_secret(project: Project) -> bool:
    digest = hashlib.sha256(SECRET).hexdigest()
    contents = database_contents(project)
    return any(digest in repr(row) or SECRET in repr(row).encode() for table in ("blobs", "items")
               for row in contents.get(table, []))


@pytest.mark.parametrize("copy_images", [False, True], ids=["paths", "copy-images"])
@pytest.mark.parametrize("how", ["file", "folder"])
def test_import_does_not_follow_symlinks_out_of_the_dataset(backend, tmp_path, secret, how, copy_images):
    """An image file that is a symlink to a file outside the dataset, or reached through a
    symlinked folder, is treated as missing (with a note): its bytes are neither stored nor
    hashed, and `export --save-images` does not copy them. The other image is kept."""
    dataset = _dataset_with(tmp_path, secret, how)
    project = backend.create()
    flags = ["--copy-images"] if copy_images else []
    result = invoke("import", "-p", project.directory, "-f", "coco", "-n", "src", dataset, *flags)
    assert "outside the dataset folder" in result.stderr
    assert not _stored_secret(project)
    rows = json.loads(invoke("query", "-p", project.directory, "--format", "json",
                             "SELECT file_name, image_path FROM items_v ORDER BY file_name").stdout)
    assert rows == [{"file_name": "a.jpg", "image_path": None}, {"file_name": "b.jpg", "image_path": "images/val/b.jpg"}]
    out = tmp_path / "out"
    exported = invoke("export", "-p", project.directory, "-f", "coco", "-o", out, "--save-images")
    assert _holds_secret(out) == []
    assert (out / "images" / "val" / "b.jpg").read_bytes() == (INSTANCES / "images" / "val" / "b.jpg").read_bytes()
    assert "train/a.jpg" in exported.stderr


def test_update_does_not_follow_symlinks_out_of_the_dataset(backend, tmp_path, secret):
    project = backend.create()
    invoke("import", "-p", project.directory, "-f", "coco", "-n", "src", _dataset_with(tmp_path, secret, "none", "plain"))
    newer = _dataset_with(tmp_path, secret, "file", "newer")
    result = invoke("update", "-p", project.directory, "src", newer, "--copy-images")
    assert "outside the dataset folder" in result.stderr
    assert not _stored_secret(project)
    invoke("export", "-p", project.directory, "-f", "coco", "-o", tmp_path / "out", "--save-images")
    assert _holds_secret(tmp_path / "out") == []


@pytest.mark.parametrize("merged", [False, True], ids=["imported", "merged"])
@pytest.mark.parametrize("how", ["file", "folder"])
def test_export_rechecks_the_source_folder(backend, tmp_path, secret, how, merged):
    """Images imported without --copy-images are read from the source folder at export. If
    an image (or its folder) has since become a symlink leading out of the dataset, the
    export does not copy it: it is reported as unavailable. The same holds for a merged
    source, which keeps its inputs' image paths."""
    dataset = _dataset_with(tmp_path, secret, "none")
    project = backend.create()
    if merged:
        for name, subset in (("a", "train"), ("b", "val")):
            invoke("import", "-p", project.directory, "-f", "coco_instances", "-n", name,
                   dataset / "annotations" / f"instances_{subset}.json")
        invoke("merge", "-p", project.directory, "-n", "merged", "a", "b")
    else:
        invoke("import", "-p", project.directory, "-f", "coco", "-n", "a", dataset)
    if how == "file":
        (dataset / "images" / "train" / "a.jpg").unlink()
        (dataset / "images" / "train" / "a.jpg").symlink_to(secret)
    else:
        shutil.rmtree(dataset / "images" / "train")
        (dataset / "images" / "train").symlink_to(secret.parent / "train", target_is_directory=True)
    out = tmp_path / "out"
    result = invoke("export", "-p", project.directory, "-f", "coco", "-o", out, "--save-images")
    assert _holds_secret(out) == []
    assert "train/a.jpg" in result.stderr
    assert (out / "images" / "val" / "b.jpg").read_bytes() == (INSTANCES / "images" / "val" / "b.jpg").read_bytes()


def test_symlinks_inside_the_dataset_are_followed(backend, tmp_path):
    """A symlink that stays inside the dataset folder is an ordinary image file."""
    dataset = tmp_path / "dataset"
    shutil.copytree(INSTANCES, dataset)
    (dataset / "images" / "shared").mkdir()
    (dataset / "images" / "train" / "a.jpg").rename(dataset / "images" / "shared" / "a.jpg")
    (dataset / "images" / "train" / "a.jpg").symlink_to(Path("..") / "shared" / "a.jpg")
    project = backend.create()
    result = invoke("import", "-p", project.directory, "-f", "coco", "-n", "src", dataset)
    assert result.stderr == ""
    out = tmp_path / "out"
    invoke("export", "-p", project.directory, "-f", "coco", "-o", out, "--save-images")
    assert (out / "images" / "train" / "a.jpg").read_bytes() == (INSTANCES / "images" / "train" / "a.jpg").read_bytes()
    assert not (out / "images" / "train" / "a.jpg").is_symlink()


# -- symlinks: panoptic PNGs too ---------------------------------------------------------------------

def _panoptic_dataset(tmp_path: Path) -> tuple[Path, Path, str]:
    """A generated panoptic dataset, its PNG folder, and the name of its first record's PNG."""
    dataset = tmp_path / "dataset"
    generate(dataset, images=4, tasks=("panoptic",))
    folder = dataset / "annotations" / "panoptic_val2017"
    first = json.loads((dataset / "annotations" / "panoptic_val2017.json").read_text())["annotations"][0]
    return dataset, folder, first["file_name"]


@pytest.mark.parametrize("how", ["file", "folder"])
def test_panoptic_pngs_leading_out_of_the_dataset_are_not_read(backend, tmp_path, how):
    """A panoptic PNG that is a symlink to a file outside the dataset, or reached through a
    PNG folder symlinked outside, is not read, although it is a valid PNG of the right size:
    the import fails naming the record (the database as before), or under `skip` drops the
    record, and the outside bytes are stored nowhere."""
    dataset, folder, name = _panoptic_dataset(tmp_path)
    outside = tmp_path / "private"
    shutil.copytree(folder, outside)  # the same, valid PNGs, outside the dataset
    outside_bytes = (outside / name).read_bytes()
    if how == "file":
        (folder / name).unlink()
        (folder / name).symlink_to(outside / name)
    else:
        shutil.rmtree(folder)
        folder.symlink_to(outside, target_is_directory=True)
    project = backend.create()
    before = database_contents(project)
    result = invoke("import", "-p", project.directory, "-f", "coco_panoptic", "-n", "src", dataset, code=None)
    assert_one_line_error(result, f"{folder / name}: annotation for image id ")
    assert "field 'file_name'" in result.stderr and "leads out of the dataset folder" in result.stderr
    assert database_contents(project) == before
    skipped = import_dataset(project, "coco_panoptic", dataset, on_error="skip", error_report=tmp_path / "r.json")
    assert skipped.skipped and all("leads out of the dataset folder" in str(error) for error in skipped.skipped)
    digest = hashlib.sha256(outside_bytes).hexdigest()
    assert not any(digest in repr(row) for row in database_contents(project).get("panoptic_pngs", []))


def test_panoptic_png_symlinks_inside_the_dataset_are_followed(backend, tmp_path):
    """A PNG symlinked to another place inside the dataset is read, and exported as it was."""
    dataset, folder, name = _panoptic_dataset(tmp_path)
    shared = dataset / "shared"
    shared.mkdir()
    (folder / name).rename(shared / name)
    (folder / name).symlink_to(Path("..") / ".." / "shared" / name)
    project = backend.create()
    import_dataset(project, "coco_panoptic", dataset)
    out = tmp_path / "out"
    invoke("export", "-p", project.directory, "-f", "coco_panoptic", "-o", out)
    assert (out / "annotations" / "panoptic_val2017" / name).read_bytes() == (shared / name).read_bytes()


# -- subset names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("subset", ["..", ".", "a\\b"])
@pytest.mark.parametrize("layout", ["folder", "file"])
def test_unsafe_subset_names_are_refused(backend, tmp_path, subset, layout):
    """The subset comes from the file name (instances_<subset>.json) and becomes a folder
    name (images/<subset>/) at export: '..', '.' and names with a path separator are
    refused with one line naming the file; the database is unchanged."""
    dataset = tmp_path / "dataset"
    (dataset / "annotations").mkdir(parents=True)
    name = f"instances_{subset}.json"
    shutil.copyfile(INSTANCES / "annotations" / "instances_val.json", dataset / "annotations" / name)
    project = backend.create()
    before = database_contents(project)
    if layout == "folder":
        result = invoke("import", "-p", project.directory, "-f", "coco", "-n", "bad", dataset, code=None)
    else:
        result = invoke("import", "-p", project.directory, "-f", "coco_instances", "-n", "bad",
                        dataset / "annotations" / name, code=None)
    assert_one_line_error(result)
    assert name in result.stderr and "subset" in result.stderr
    assert database_contents(project) == before


# -- the password in dsrepo.json ---------------------------------------------------------------------

def test_a_remembered_password_is_private(pg_backend, tmp_path):
    """`create --db URL` with a password remembers the URL in dsrepo.json, readable by its
    owner only (mode 0600); output masks the password."""
    url = make_url(pg_backend.new_url()).set(password="s3cret-pw").render_as_string(hide_password=False)
    created = invoke("create", "-p", tmp_path / "p", "--db", url)
    assert "s3cret-pw" not in created.stdout
    config = tmp_path / "p" / "dsrepo.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "s3cret-pw" not in invoke("info", "-p", tmp_path / "p").stdout


@pytest.mark.parametrize("named", ["folder", "annotation file"])
def test_a_dataset_folder_whose_path_is_not_utf8_is_refused(backend, tmp_path, named):
    """A folder or file named in Latin-1 (byte 0xe9) reaches Python as a lone surrogate, which
    no database takes as text: `import` and `update` refuse it in one line, writing nothing."""
    good = tmp_path / "good"
    shutil.copytree(DATA / "datumaro_coco" / "coco_instances", good)
    latin1 = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9"))
    shutil.copytree(good, latin1)
    if named == "annotation file":
        latin1 = tmp_path / "renamed"
        shutil.copytree(good, latin1)
        for path in (latin1 / "annotations").glob("instances_*.json"):
            path.rename(os.fsdecode(os.fsencode(path.parent) + b"/instances_caf\xe9" + os.fsencode(path.name)[9:]))
    project = backend.create()
    import_dataset(project, "coco_instances", good, name="src")
    before = database_contents(project)
    for args in (["import", "-f", "coco_instances", "-n", "other"], ["update", "src"]):
        result = invoke(*args[:1], "-p", project.directory, *args[1:], latin1, code=None)
        assert_one_line_error(result)
        assert "the path is not UTF-8 text" in result.stderr and "caf" in result.stderr
    assert database_contents(project) == before
