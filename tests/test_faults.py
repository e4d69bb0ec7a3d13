"""Faults and concurrency: a killed import, two writers, concurrent PostgreSQL imports, and
paths that would read or write outside their folders.

Everything runs for real: `dsrepo` as a subprocess (`python -m repo.cli`) on real SQLite
files and a real PostgreSQL server; nothing is mocked. "The database is unchanged" means
`helpers.database_contents` (every row of every table, and the schema) is equal.

The datasets are made once per module: a big one for the kill test (15000 images, 120000
polygon annotations in three files, written directly as JSON because `gen_coco` would take
longer to make it than dsrepo takes to import it; the import takes several seconds) and two
medium ones from `gen_coco.generate` (seeded) for the concurrent imports.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from gen_coco import generate
from helpers import DATA, Backend, assert_same_file, database_contents, load_json
from repo.importing import import_dataset
from repo.project import Project

ROOT = Path(__file__).resolve().parents[1]
INSTANCES = DATA / "datumaro_coco" / "coco_instances"
PANOPTIC = DATA / "panopticapi_sample" / "coco"

BUSY = "Error: project is busy: another dsrepo command is writing to it; try again when it has finished\n"
KILL_AFTER = 2.0  # seconds the import runs before SIGKILL
GROWTH = 256 * 1024  # bytes of uncommitted data on disk that prove the import was writing


# -- running dsrepo ---------------------------------------------------------------------------

def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DSREPO_DB"}
    env.update(extra or {})
    return env


_started: list[subprocess.Popen[str]] = []


def start(*args: Any, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`dsrepo ARGS` as a subprocess, stdout and stderr captured."""
    process = subprocess.Popen(
        [sys.executable, "-m", "repo.cli", *map(str, args)], cwd=ROOT, env=_env(env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    _started.append(process)
    return process


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    """A test that fails half-way must not leave the dsrepo processes it started running."""
    yield
    while _started:
        process = _started.pop()
        if process.poll() is None:
            process.kill()
            process.communicate()


@dataclass
class Done:
    code: int
    stdout: str
    stderr: str
    seconds: float = 0.0


def finish(process: subprocess.Popen[str], timeout: float = 120) -> Done:
    stdout, stderr = process.communicate(timeout=timeout)
    return Done(process.returncode, stdout, stderr)


def run(*args: Any, env: dict[str, str] | None = None, code: int | None = 0) -> Done:
    began = time.monotonic()
    done = finish(start(*args, env=env))
    done.seconds = time.monotonic() - began
    if code is not None:
        assert done.code == code, f"dsrepo {' '.join(map(str, args))}: exit {done.code}\n{done.stderr}"
    return done


# -- databases --------------------------------------------------------------------------------

def database_name(project: Project) -> str:
    return make_url(project.url).database


def sqlite_path(project: Project) -> Path:
    return Path(make_url(project.url).database)


def stored_bytes(project: Project) -> int:
    """Bytes on disk, uncommitted writes included: the WAL file of SQLite, the tables' files
    of PostgreSQL (an open transaction's rows are in the heap before they are committed)."""
    if project.url.startswith("sqlite"):
        wal = Path(f"{sqlite_path(project)}-wal")
        return wal.stat().st_size if wal.exists() else 0
    with project.engine.connect() as connection:
        return connection.execute(text(
            "SELECT coalesce(sum(pg_relation_size(oid)), 0) FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        )).scalar_one()


def pg_sessions(admin_url: str, database: str) -> list[Any]:
    """The server's sessions on `database` (pid, transaction id, state, wait event)."""
    engine = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            return connection.execute(text(
                "SELECT pid, backend_xid, state, wait_event_type FROM pg_stat_activity "
                "WHERE datname = :database AND pid <> pg_backend_pid()"
            ), {"database": database}).all()
    finally:
        engine.dispose()


def wait_for_no_sessions(admin_url: str, database: str, timeout: float = 30) -> None:
    """Until the server has ended (and so rolled back) every session on `database`."""
    deadline = time.monotonic() + timeout
    while sessions := pg_sessions(admin_url, database):
        assert time.monotonic() < deadline, f"sessions still open on {database}: {sessions}"
        time.sleep(0.05)


def writers_at_once(admin_url: str, database: str, processes: list[subprocess.Popen[str]]) -> int:
    """While `processes` run: the most sessions seen at one time with an open write
    transaction (a transaction id is assigned at a transaction's first write)."""
    engine = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    most = 0
    try:
        with engine.connect() as connection:
            while any(process.poll() is None for process in processes):
                count = connection.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = :database AND backend_xid IS NOT NULL"
                ), {"database": database}).scalar_one()
                most = max(most, count)
                time.sleep(0.02)
    finally:
        engine.dispose()
    return most


def sqlite_integrity(project: Project) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(sqlite_path(project))
    try:
        return connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()


def annotation_facts(project: Project, source: str) -> set[tuple[Any, ...]]:
    """One tuple per annotation of `source` in the working state, from the query view."""
    with project.reading() as connection:
        rows = connection.execute(text(
            "SELECT file_name, coco_id, label, bbox_x, bbox_y, bbox_w, bbox_h FROM annotations_v WHERE source = :s"
        ), {"s": source}).all()
    return {tuple(row) for row in rows}


def expected_facts(annotation_file: Path) -> set[tuple[Any, ...]]:
    """The same tuples, computed from the COCO file itself."""
    document = load_json(annotation_file)
    names = {image["id"]: image["file_name"] for image in document["images"]}
    labels = {category["id"]: category["name"] for category in document["categories"]}
    return {
        (names[a["image_id"]], a["id"], labels[a["category_id"]], *map(float, a["bbox"]))
        for a in document["annotations"]
    }


def item_count(project: Project, source: str) -> int:
    with project.reading() as connection:
        return connection.execute(text("SELECT count(*) FROM items_v WHERE source = :s"), {"s": source}).scalar_one()


def live_sources(project: Project, name: str) -> int:
    """Rows of the sources table with this name (any version): the name's whole footprint."""
    with project.reading() as connection:
        return connection.execute(text("SELECT count(*) FROM sources WHERE name = :n"), {"n": name}).scalar_one()


class Hold:
    """A `Progress` that stops the import, its transaction open: at its end (every row
    written, nothing committed), or, given `stage`, when a stage whose label contains it
    starts (e.g. "instances_b.json": the files before it are written).

    `reached` is set when the import gets there; it then waits for `release`."""

    def __init__(self, stage: str | None = None) -> None:
        self.stage = stage
        self.reached = threading.Event()
        self.release = threading.Event()

    def start(self, label: str, total: int) -> None:
        if self.stage is not None and self.stage in label:
            self._hold()

    def advance(self, steps: int = 1) -> None:
        pass

    def finish(self) -> None:
        if self.stage is None:
            self._hold()

    def _hold(self) -> None:
        if not self.reached.is_set():
            self.reached.set()
            assert self.release.wait(120), "the test never released the import"


class ImportThread(threading.Thread):
    """`import_dataset` in a thread, held open (uncommitted) by a Hold."""

    def __init__(self, project_dir: Path, dataset: Path, name: str, stage: str | None = None):
        super().__init__(daemon=True)
        self.project_dir, self.dataset, self.name = project_dir, dataset, name
        self.hold = Hold(stage)
        self.error: BaseException | None = None

    def run(self) -> None:
        project = Project.open(self.project_dir)
        try:
            import_dataset(project, "coco", self.dataset, name=self.name, progress=self.hold)
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.hold.reached.set()
        finally:
            project.close()

    def wait_until_written(self) -> None:
        assert self.hold.reached.wait(60), f"the import never reached {self.hold.stage or 'its end'}"
        assert self.error is None, f"the held import failed: {self.error!r}"

    def release(self) -> None:
        """Let the import go on to its commit (or its failure: see `error`)."""
        self.hold.release.set()
        self.join(60)
        assert not self.is_alive(), "the held import did not finish"

    def commit(self) -> None:
        self.release()
        assert self.error is None, f"the held import failed: {self.error!r}"


# -- data -------------------------------------------------------------------------------------

THINGS = ("person", "bicycle", "car", "dog", "cat", "chair", "cup", "book")


@pytest.fixture(scope="module")
def big_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """15000 images, 120000 annotations in three files (51 MB): a `dsrepo import` takes
    well over KILL_AFTER seconds (~8 s here), so the kill lands in the middle."""
    subsets = {subset: (THINGS, 5000) for subset in ("train", "val", "test")}
    return labelled_dataset(tmp_path_factory.mktemp("big") / "big", subsets, 8)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small") / "small"
    generate(root, images=20, seed=4, tasks=["instances"])
    return root


PAIR_IMAGES = 600


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two different datasets (instances, PAIR_IMAGES images each) with the same 80 COCO label names."""
    base = tmp_path_factory.mktemp("pair")
    generate(base / "a", images=PAIR_IMAGES, seed=21, tasks=["instances"])
    generate(base / "b", images=PAIR_IMAGES, seed=22, tasks=["instances"])
    return base / "a", base / "b"


def labelled_dataset(root: Path, files: dict[str, tuple[tuple[str, ...], int]], per_image: int = 5) -> Path:
    """A COCO folder with one instances file per subset: {subset: (label names, images)};
    annotations cycle through the labels. Files are read in subset order."""
    annotations = root / "annotations"
    annotations.mkdir(parents=True)
    for subset, (labels, images) in files.items():
        document = {
            "images": [{"id": i, "file_name": f"{subset}/{i}.jpg", "width": 640, "height": 480} for i in range(1, images + 1)],
            "annotations": [
                {"id": i * per_image + k, "image_id": i, "category_id": 1 + (i + k) % len(labels),
                 "bbox": [k, k, 10.5, 20.0], "area": 210.0, "iscrowd": 0,
                 "segmentation": [[k, k, k + 10.0, k, k + 10.0, k + 20.0]]}
                for i in range(1, images + 1) for k in range(per_image)
            ],
            "categories": [{"id": n, "name": label, "supercategory": ""} for n, label in enumerate(labels, 1)],
        }
        (annotations / f"instances_{subset}.json").write_text(json.dumps(document), encoding="utf-8")
    return root


@pytest.fixture
def pg_backend(pg_admin_url: str, tmp_path: Path) -> Iterator[Backend]:
    backend = Backend("postgresql", tmp_path, pg_admin_url)
    yield backend
    backend.drop_all()


# == 1. an import killed with SIGKILL leaves no trace ===========================================

def test_sigkill_during_import_leaves_the_database_as_it_was(cli, backend, tmp_path, big_dataset, small_dataset):
    """A project already holds a source; `dsrepo import` of a big dataset is killed with
    SIGKILL while it writes (its uncommitted rows are on disk: SQLite's WAL, PostgreSQL's
    heap). Afterwards the database is exactly as before, SQLite's integrity check passes, and
    the project works: the killed import's name is free, a new import and an export succeed."""
    project = backend.create()
    project_dir = project.directory
    import_dataset(project, "coco", INSTANCES)
    before = database_contents(project)
    size_before = stored_bytes(project)

    began = time.monotonic()
    process = start("import", "-p", project_dir, "-f", "coco", "-n", "big", "-q", big_dataset)
    writing = False
    while not (writing and time.monotonic() - began >= KILL_AFTER):
        if process.poll() is not None:
            done = finish(process)
            pytest.fail(f"the import ended (exit {done.code}) before it could be killed: the dataset is too small "
                        f"to be killed in the middle\n{done.stderr}")
        assert time.monotonic() - began < 60, "the import never started writing"
        writing = writing or stored_bytes(project) >= size_before + GROWTH
        time.sleep(0.05)
    assert process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the import finished before the kill: the dataset is too small"

    if backend.name == "postgresql":
        wait_for_no_sessions(backend.admin_url, database_name(project))
    else:
        assert Path(f"{sqlite_path(project)}-wal").stat().st_size > 0  # the torn transaction is on disk
        assert sqlite_integrity(project) == [("ok",)]
    assert database_contents(project) == before

    imported = cli("import", "-p", project_dir, "-f", "coco", "-n", "big", small_dataset)
    assert imported.stdout == "imported source 'big': 1 files, 20 images, " \
        f"{len(load_json(small_dataset / 'annotations' / 'instances_val2017.json')['annotations'])} annotations\n"
    out = tmp_path / "out"
    cli("export", "-p", project_dir, "-f", "coco", "-o", out, "-q")
    for name in ("instances_train.json", "instances_val.json"):
        assert_same_file(INSTANCES / "annotations" / name, out / "annotations" / name)
    assert_same_file(small_dataset / "annotations" / "instances_val2017.json", out / "annotations" / "instances_val2017.json")
    if backend.name == "sqlite":
        assert sqlite_integrity(project) == [("ok",)]


# == 2. two writers; readers during a write =====================================================

def test_second_sqlite_writer_gives_up_after_the_busy_timeout(cli, tmp_path, monkeypatch):
    """The test holds the write lock (BEGIN IMMEDIATE through `Project.writing`); `dsrepo
    import` with DSREPO_BUSY_TIMEOUT=1 exits 1 after about a second with the one-line busy
    message and changes nothing. Once the lock is released, the same import succeeds."""
    project = Project.create(tmp_path / "project")
    import_dataset(project, "coco", INSTANCES)
    before = database_contents(project)
    command = ["import", "-p", project.directory, "-f", "coco", "-n", "second", INSTANCES]
    env = {"DSREPO_BUSY_TIMEOUT": "1"}

    with project.writing():
        probe = sqlite3.connect(sqlite_path(project), timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                probe.execute("BEGIN IMMEDIATE")  # the test really holds the write lock
        finally:
            probe.close()
        refused = run(*command, env=env, code=None)
        assert (refused.code, refused.stdout, refused.stderr) == (1, "", BUSY)
        # it waited for the lock (~1 s), and not for the default 10 s
        assert 1.0 <= refused.seconds < 8, refused.seconds
        assert database_contents(project) == before  # readers are not blocked by the writer

    assert database_contents(project) == before
    monkeypatch.setenv("DSREPO_BUSY_TIMEOUT", "1")
    accepted = cli(*command)
    assert accepted.stdout == "imported source 'second': 2 files, 2 images, 3 annotations\n"


def test_readers_see_the_last_commit_while_an_import_is_uncommitted(cli, backend, tmp_path, pair):
    """An import (PAIR_IMAGES images) has written all its rows but not committed. Meanwhile `dsrepo
    query` and `dsrepo export` succeed and see only the committed state: the same query
    result and the same exported files as before the import began. After the commit they see
    the new source."""
    project = backend.create()
    project_dir = project.directory
    import_dataset(project, "coco", INSTANCES, name="base")
    sql = "SELECT source, count(*) AS n FROM annotations_v GROUP BY source ORDER BY source"
    committed = cli("query", "-p", project_dir, "--format", "json", sql).stdout
    assert json.loads(committed) == [{"source": "base", "n": 3}]
    cli("export", "-p", project_dir, "-f", "coco", "-o", tmp_path / "committed", "-q")
    size_before = stored_bytes(project)

    held = ImportThread(project_dir, pair[0], "pending")
    held.start()
    try:
        held.wait_until_written()
        if backend.name == "sqlite":
            assert stored_bytes(project) > size_before  # uncommitted pages are in the WAL
        else:
            writers = [s for s in pg_sessions(backend.admin_url, database_name(project)) if s.backend_xid is not None]
            assert len(writers) == 1, writers  # the held import's open write transaction

        readers = [start("query", "-p", project_dir, "--format", "json", sql),
                   start("export", "-p", project_dir, "-f", "coco", "-o", tmp_path / "during", "-q")]
        query, export = [finish(reader, timeout=60) for reader in readers]
        assert (query.code, query.stdout, query.stderr) == (0, committed, "")
        assert (export.code, export.stderr) == (0, "")
        assert sorted(p.relative_to(tmp_path / "during") for p in (tmp_path / "during").rglob("*")) == \
            sorted(p.relative_to(tmp_path / "committed") for p in (tmp_path / "committed").rglob("*"))
        for name in ("instances_train.json", "instances_val.json"):
            assert_same_file(tmp_path / "committed" / "annotations" / name, tmp_path / "during" / "annotations" / name)
    finally:
        held.commit()

    after = json.loads(cli("query", "-p", project_dir, "--format", "json", sql).stdout)
    expected = len(load_json(pair[0] / "annotations" / "instances_val2017.json")["annotations"])
    assert after == [{"source": "base", "n": 3}, {"source": "pending", "n": expected}]


# == 3. concurrent imports into one PostgreSQL project =========================================

def test_concurrent_pg_imports_under_different_names_both_succeed(pg_backend, pair):
    """Two `dsrepo import`s started at once (-n a, -n b; different data, the same 80 label
    names) both succeed, their write transactions overlapped, and afterwards each source
    holds all its images and annotations, with each label stored once."""
    project = pg_backend.create()
    processes = [start("import", "-p", project.directory, "-f", "coco", "-n", name, data)
                 for name, data in zip("ab", pair)]
    overlap = writers_at_once(pg_backend.admin_url, database_name(project), processes)
    results = [finish(process) for process in processes]
    for result in results:
        assert result.code == 0, result.stderr
        assert result.stdout.startswith("imported source "), result.stdout
    # The race was exercised: writers hold a shared lock only, so both were writing at once.
    assert overlap == 2, "the two imports did not write at the same time"

    labels = set()
    for name, data in zip("ab", pair):
        annotation_file = data / "annotations" / "instances_val2017.json"
        assert item_count(project, name) == PAIR_IMAGES
        assert annotation_facts(project, name) == expected_facts(annotation_file)
        labels |= {category["name"] for category in load_json(annotation_file)["categories"]}
    with project.reading() as connection:
        stored = connection.execute(text("SELECT name FROM labels WHERE rev_to IS NULL")).scalars().all()
    assert sorted(stored) == sorted(labels)


def wait_for_lock_wait(admin_url: str, database: str, process: subprocess.Popen[str], what: str) -> None:
    """Until a session on `database` waits for a lock (while `process` is still running)."""
    deadline = time.monotonic() + 30
    while not any(s.wait_event_type == "Lock" for s in pg_sessions(admin_url, database)):
        if process.poll() is not None:
            done = finish(process)
            pytest.fail(f"{what}: the process ended first (exit {done.code})\n{done.stderr}")
        assert time.monotonic() < deadline, f"{what}: no session waited for a lock"
        time.sleep(0.05)


def test_concurrent_pg_imports_that_add_the_same_labels_in_opposite_orders(pg_backend, tmp_path):
    """Two imports into one PostgreSQL project under different names, each of two files that
    bring two new labels in opposite orders: X adds 'alpha' (file a), then 'beta' (file b);
    Y adds 'beta', then 'alpha'. Both must succeed, each source complete.

    The interleaving is made certain: X (an import in a thread) is held after file a, with
    'alpha' written but not committed; Y (`dsrepo import` as a subprocess) writes 'beta' and
    its file a, then waits for X's 'alpha'; then X goes on to 'beta'.

    This deadlocked before labels were created under one advisory lock (PostgreSQL found
    X holding 'alpha' and waiting for 'beta', Y the reverse, and aborted one import).
    """
    x = labelled_dataset(tmp_path / "x", {"a": (("alpha",), 10), "b": (("beta",), 10)})
    y = labelled_dataset(tmp_path / "y", {"a": (("beta",), 10), "b": (("alpha",), 10)})
    project = pg_backend.create()
    held = ImportThread(project.directory, x, "x", stage="instances_b.json")
    held.start()
    try:
        held.wait_until_written()
        other = start("import", "-p", project.directory, "-f", "coco", "-n", "y", "-q", y)
        wait_for_lock_wait(pg_backend.admin_url, database_name(project), other, "import y")
    finally:
        held.release()
    second = finish(other)
    assert (held.error, second.code) == (None, 0), f"x: {held.error}\ny: {second.stderr}"
    for name, data in (("x", x), ("y", y)):
        assert item_count(project, name) == 20
        expected = expected_facts(data / "annotations" / "instances_a.json") | \
            expected_facts(data / "annotations" / "instances_b.json")
        assert annotation_facts(project, name) == expected


NAME_TAKEN_CHECK = ("Error: a source named 'x' already exists; choose another name with -n, "
                    "or update it with `dsrepo update x PATH`\n")
NAME_TAKEN_INDEX = "Error: a source named 'x' already exists; choose another name with -n\n"


def test_concurrent_pg_imports_under_the_same_name_one_wins(cli, pg_backend, pair):
    """Two `dsrepo import -n x` started at once: both pass the name check before either
    commits, so the loser meets the unique index. Exactly one succeeds; the other exits 1
    with the one-line "already exists" message and leaves nothing behind; the winner's data
    is complete. A third import under the same name then meets the name check."""
    project = pg_backend.create()
    processes = [start("import", "-p", project.directory, "-f", "coco", "-n", "x", "-q", data) for data in pair]
    overlap = writers_at_once(pg_backend.admin_url, database_name(project), processes)
    results = [finish(process) for process in processes]
    assert sorted(r.code for r in results) == [0, 1], [r.stderr for r in results]
    winner = next(i for i, r in enumerate(results) if r.code == 0)
    loser = results[1 - winner]
    assert loser.stdout == ""
    if overlap == 2:  # both had written (the source row), so both had passed the name check
        assert loser.stderr == NAME_TAKEN_INDEX
    else:
        assert loser.stderr in (NAME_TAKEN_INDEX, NAME_TAKEN_CHECK)

    assert live_sources(project, "x") == 1
    assert item_count(project, "x") == PAIR_IMAGES
    assert annotation_facts(project, "x") == expected_facts(pair[winner] / "annotations" / "instances_val2017.json")

    before = database_contents(project)
    third = cli("import", "-p", project.directory, "-f", "coco", "-n", "x", "-q", INSTANCES, code=1)
    assert third.stderr == NAME_TAKEN_CHECK
    assert database_contents(project) == before


def test_pg_import_meets_the_unique_index_when_the_other_commits_later(pg_backend):
    """The IntegrityError path made deterministic: an import of source 'x' is held open (all
    rows written, not committed) while `dsrepo import -n x` starts; that one passes the name
    check (it cannot see the uncommitted row) and waits on the unique index. When the first
    commits, it exits 1 with the one-line message and the database holds the first 'x' only."""
    project = pg_backend.create()
    database = database_name(project)
    held = ImportThread(project.directory, INSTANCES, "x")
    held.start()
    try:
        held.wait_until_written()
        process = start("import", "-p", project.directory, "-f", "coco", "-n", "x", "-q", PANOPTIC)
        wait_for_lock_wait(pg_backend.admin_url, database, process, "the second import")
    finally:
        held.commit()
    refused = finish(process)
    assert (refused.code, refused.stdout, refused.stderr) == (1, "", NAME_TAKEN_INDEX)
    assert live_sources(project, "x") == 1
    assert annotation_facts(project, "x") == expected_facts(INSTANCES / "annotations" / "instances_train.json") | \
        expected_facts(INSTANCES / "annotations" / "instances_val.json")


def test_pg_commit_during_an_import_does_not_take_the_import_into_the_revision(cli, pg_backend, tmp_path, small_dataset):
    """`dsrepo commit` runs while an import (source 'late') has written its rows but not
    committed. A revision, once recorded, must not change afterwards: either the commit
    records the working state it sees (source 'base' only) and 'late', committed later, is
    an uncommitted change that `status` lists; or the commit waits for the import and
    records both.

    Before writers took a shared advisory lock (and commit an exclusive one), the commit
    recorded 'base' only and the import then committed rows stamped with that revision,
    changing it after the fact. Now the commit waits for the import.
    """
    project = pg_backend.create()
    project_dir = project.directory
    import_dataset(project, "coco", INSTANCES, name="base")
    cli("export", "-p", project_dir, "-f", "coco", "-o", tmp_path / "base", "-q")
    held = ImportThread(project_dir, small_dataset, "late")
    held.start()
    waited = False
    try:
        held.wait_until_written()
        commit = start("commit", "-p", project_dir, "-m", "first")
        deadline = time.monotonic() + 30
        while commit.poll() is None and not waited:
            assert time.monotonic() < deadline, "the commit neither ended nor waited for the import"
            waited = any(s.wait_event_type == "Lock" for s in pg_sessions(pg_backend.admin_url, database_name(project)))
            time.sleep(0.05)
    finally:
        held.commit()
    committed = finish(commit)
    assert committed.code == 0, committed.stderr
    status = cli("status", "-p", project_dir).stdout
    cli("export", "-p", project_dir, "-f", "coco", "--rev", "HEAD", "-o", tmp_path / "head", "-q")
    head_files = sorted(p.name for p in (tmp_path / "head" / "annotations").iterdir())
    if waited:  # the commit waited for the import and recorded both sources
        assert status == "nothing to commit: the working state equals HEAD\n"
        assert "instances_val2017.json" in head_files
    else:  # the commit recorded the working state it saw: 'base' only
        assert "late:" in status.splitlines(), f"the import is not listed as uncommitted:\n{status}"
        assert head_files == sorted(p.name for p in (tmp_path / "base" / "annotations").iterdir()), \
            "revision 'first' gained the files of an import committed after it"
        for name in head_files:
            assert_same_file(tmp_path / "base" / "annotations" / name, tmp_path / "head" / "annotations" / name)


# == 4. paths: export stays inside -o; unsafe file names are refused ============================

def tree(root: Path, *skip: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under root but those under `skip`: a file's size and mtime, None for a folder
    (whose mtime changes when an entry is added, e.g. the new -o folder)."""
    found: dict[str, tuple[int, int] | None] = {}
    for path in root.rglob("*"):
        if any(path == s or s in path.parents for s in skip):
            continue
        info = path.lstat()
        found[str(path.relative_to(root))] = None if path.is_dir() and not path.is_symlink() else (info.st_size, info.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def edge_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every task, panoptic PNGs, image files in sub-folders and with unicode names."""
    root = tmp_path_factory.mktemp("edge") / "edge"
    generate(root, images=8, seed=5, edge_cases=True, write_images=True)
    return root


def test_export_refuses_a_non_empty_folder_unless_overwrite(cli, backend, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", INSTANCES)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n")
    before = tree(tmp_path, project.directory)  # (SQLite's -wal and -shm files come and go)
    refused = cli("export", "-p", project.directory, "-f", "coco", "-o", out, code=1)
    assert refused.stderr == f"Error: {out} is not empty; choose an empty folder or pass --overwrite\n"
    assert tree(tmp_path, project.directory) == before
    cli("export", "-p", project.directory, "-f", "coco", "-o", out, "--overwrite", "-q")
    assert_same_file(INSTANCES / "annotations" / "instances_val.json", out / "annotations" / "instances_val.json")

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    refused = cli("export", "-p", project.directory, "-f", "coco", "-o", a_file, "--overwrite", code=1)
    assert refused.stderr == f"Error: {a_file} exists and is not a folder\n"
    assert a_file.read_text() == "x"


def test_export_writes_nothing_outside_the_output_folder(cli, backend, tmp_path, edge_dataset, monkeypatch):
    """An export of every task with PNGs and --save-images (file names with sub-folders,
    spaces, unicode), to a relative -o, changes nothing in the working folder or the
    dataset but the new -o folder. With --overwrite into a folder holding a symlink that
    points out (a sub-folder, or a file the export would write), nothing outside changes:
    the export is written into a new folder that replaces the old one whole, links and all."""
    project = backend.create("work/project")
    cli("import", "-p", project.directory, "-f", "coco", "--copy-images", "-q", edge_dataset)
    monkeypatch.chdir(tmp_path / "work")
    out = tmp_path / "work" / "nested" / "out"
    before, dataset_before = tree(tmp_path, project.directory), tree(edge_dataset)
    cli("export", "-p", "project", "-f", "coco", "-o", "nested/out", "--save-images", "-q")
    assert tree(tmp_path, project.directory, tmp_path / "work" / "nested") == before
    assert tree(edge_dataset) == dataset_before
    written = tree(out)
    assert "images/val2017/sub/dir/x.jpg" in written and "annotations/panoptic_val2017/sub/dir/x.png" in written
    for name in ("instances_val2017.json", "panoptic_val2017.json"):
        assert_same_file(edge_dataset / "annotations" / name, out / "annotations" / name)

    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_text("not yours\n")
    outside_before = tree(outside)
    for number, link in enumerate(["annotations", "images", "images/val2017",
                                   "annotations/instances_val2017.json", "images/val2017/with space.jpg"]):
        trap = tmp_path / f"trap{number}"
        (trap / link).parent.mkdir(parents=True, exist_ok=True)
        (trap / link).symlink_to(victim if link.endswith(".jpg") or link.endswith(".json") else outside)
        cli("export", "-p", "project", "-f", "coco", "-o", trap, "--overwrite", "--save-images", "-q")
        assert tree(trap).keys() == written.keys(), link
        assert not any(path.is_symlink() for path in trap.rglob("*")), link
        assert tree(outside) == outside_before, link


CLIMBS = "climbs out of the dataset folder with '..'"
ABSOLUTE = "is an absolute path; expected a path inside the dataset folder"
UNSAFE_NAMES = [("../x", CLIMBS), ("sub/../../x", CLIMBS), ("..\\x", CLIMBS), ("/x", ABSOLUTE), ("C:\\x", ABSOLUTE)]


def _unsafe_copy(folder: Path, kind: str, name: str) -> tuple[str, str]:
    """A copy of a small dataset whose first image's file_name (kind 'image') or first panoptic
    record's PNG file_name (kind 'png') is `name`; what it names exists where it points.
    Returns the format and the start of the expected message (file: record: field: value)."""
    if kind == "image":
        shutil.copytree(INSTANCES, folder)
        file, record = folder / "annotations" / "instances_train.json", "image id 5"
        document = load_json(file)
        document["images"][0]["file_name"] = name + ".jpg"
        target = folder / "images" / "train" / (name + ".jpg")
        source = INSTANCES / "images" / "train" / "a.jpg"
        format_name = "coco_instances"
    else:
        shutil.copytree(PANOPTIC, folder)
        file = folder / "annotations" / "panoptic_val2017.json"
        document = load_json(file)
        record = f"annotation for image id {document['annotations'][0]['image_id']}"
        source = folder / "annotations" / "panoptic_val2017" / document["annotations"][0]["file_name"]
        document["annotations"][0]["file_name"] = name + ".png"
        target = folder / "annotations" / "panoptic_val2017" / (name + ".png")
        format_name = "coco_panoptic"
    file.write_text(json.dumps(document), encoding="utf-8")
    if "/" in name and not name.startswith("/"):  # a relative name: put a real file where it leads
        target = target.resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    shown = os.path.join(str(folder), "annotations", file.name)
    value = json.dumps(name + (".jpg" if kind == "image" else ".png"))
    return format_name, f"{shown}: {record}: field 'file_name': the string {value} "


@pytest.mark.parametrize("kind", ["image", "png"])
def test_unsafe_file_names_are_refused_at_import(cli, backend, tmp_path, kind):
    """An image file_name or a panoptic PNG file_name that climbs out with '..' (POSIX or
    Windows separators) or is absolute (POSIX or a Windows drive) fails the import with one
    line naming the file, the record and the field; exit 1; the database is unchanged."""
    project = backend.create()
    import_dataset(project, "coco", INSTANCES)
    before = database_contents(project)
    for number, (name, problem) in enumerate(UNSAFE_NAMES):
        folder = tmp_path / f"unsafe{number}"
        format_name, where = _unsafe_copy(folder, kind, name)
        refused = cli("import", "-p", project.directory, "-f", format_name, "-n", "unsafe", folder, code=1)
        assert refused.stderr == f"Error: {where}{problem}\n", name
        assert refused.stdout == ""
        assert database_contents(project) == before, name


def test_names_that_only_contain_dots_are_accepted(cli, tmp_path):
    """The check is about path components: '..x.jpg' and 'x..jpg' are ordinary file names;
    they import and export back unchanged."""
    folder = tmp_path / "dots"
    shutil.copytree(INSTANCES, folder)
    for subset, name in (("train", "..x.jpg"), ("val", "x..jpg")):
        file = folder / "annotations" / f"instances_{subset}.json"
        document = load_json(file)
        old = document["images"][0]["file_name"]
        document["images"][0]["file_name"] = name
        file.write_text(json.dumps(document), encoding="utf-8")
        (folder / "images" / subset / old).rename(folder / "images" / subset / name)
    cli("create", "-p", tmp_path / "project", "-q")
    imported = cli("import", "-p", tmp_path / "project", "-f", "coco", folder)
    assert imported.stderr == ""  # both images were found
    cli("export", "-p", tmp_path / "project", "-f", "coco", "-o", tmp_path / "out", "--save-images", "-q")
    out = tmp_path / "out"
    for subset, name in (("train", "..x.jpg"), ("val", "x..jpg")):
        annotation_file = Path("annotations") / f"instances_{subset}.json"
        assert_same_file(folder / annotation_file, out / annotation_file)
        assert (out / "images" / subset / name).read_bytes() == (folder / "images" / subset / name).read_bytes()
