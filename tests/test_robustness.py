"""Robustness: bounded waits, Ctrl-C and timeouts, bounded memory (query output, intersect
merge), reports and exports that are all-or-nothing, deep nesting, a PNG whose header lies.

Commands that might never end, or whose signals or memory matter, run as subprocesses
(`python -m repo.cli`) with a timeout of their own; the others through click's runner.
Memory is the peak resident size of that one subprocess since it started Python (VmHWM, which
it reports as it exits; the kernel's ru_maxrss would include the test process it was forked
from), compared with the peak of a command that does almost nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from helpers import DATA, Backend
from helpers import assert_one_line_error, invoke
from helpers import database_contents, json_difference, load_json
from repo._internal.reports import staged_reports
from repo.importing import import_dataset
from repo.project import Project
from repo.store.engine import WRITERS_LOCK

ROOT = Path(__file__).resolve().parents[1]
INSTANCES = DATA / "datumaro_coco" / "coco_instances"
PANOPTIC = DATA / "panopticapi_sample" / "coco"
BUSY = "Error: project is busy: another dsrepo command is writing to it; try again when it has finished\n"
ENDLESS_SQLITE = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
ENDLESS_PG = "SELECT pg_sleep(600)"


# -- running dsrepo ---------------------------------------------------------------------------

def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "DSREPO_DB"} | (extra or {})


_started: list[subprocess.Popen[str]] = []


# `python -m repo.cli`, writing its peak resident size (kB) to $PEAK_FILE as it exits.
MEASURED = """
import atexit, os, runpy, sys

def report():
    status = open("/proc/self/status").read()
    peak = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    with open(os.environ["PEAK_FILE"], "w") as file:
        file.write(peak)

atexit.register(report)
sys.argv[0] = "dsrepo"
runpy.run_module("repo.cli", run_name="__main__")
"""


def start(*args: Any, env: dict[str, str] | None = None, stdout: Any = subprocess.PIPE,
          limit_memory: int | None = None, measured: bool = False) -> subprocess.Popen[str]:
    def prepare() -> None:
        # Ctrl-C as a shell delivers it to a foreground command: a test run started in the
        # background of a script inherits SIGINT ignored, and the Ctrl-C tests would wait for ever.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if limit_memory:
            resource.setrlimit(resource.RLIMIT_AS, (limit_memory, limit_memory))

    program = ["-c", MEASURED] if measured else ["-m", "repo.cli"]
    process = subprocess.Popen(
        [sys.executable, *program, *map(str, args)], cwd=ROOT, env=_env(env),
        stdout=stdout, stderr=subprocess.PIPE, text=True, preexec_fn=prepare,
    )
    _started.append(process)
    return process


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
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
    peak_rss: int = 0  # bytes


def finish(process: subprocess.Popen[str], timeout: float = 60) -> Done:
    stdout, stderr = process.communicate(timeout=timeout)
    return Done(process.returncode, stdout or "", stderr)


def run(*args: Any, env: dict[str, str] | None = None, timeout: float = 60) -> Done:
    return finish(start(*args, env=env), timeout)


def run_measured(*args: Any, output: Path, env: dict[str, str] | None = None, timeout: float = 300,
                 limit_memory: int | None = None) -> Done:
    """Run to the end, stdout into `output`; the peak resident size of the command."""
    peak_file = output.with_suffix(".peak")
    with output.open("w") as sink:
        process = start(*args, env=(env or {}) | {"PEAK_FILE": str(peak_file)}, stdout=sink,
                        limit_memory=limit_memory, measured=True)
        done = finish(process, timeout)
    done.peak_rss = int(peak_file.read_text()) * 1024 if peak_file.exists() else 0
    return done


def baseline_rss(tmp_path: Path, project_dir: Path) -> int:
    """The peak resident size of `dsrepo info`: the interpreter and dsrepo's imports."""
    done = run_measured("info", "-p", project_dir, output=tmp_path / "baseline.txt")
    assert done.code == 0, done.stderr
    return done.peak_rss


def one_line(done: Done) -> None:
    assert done.code == 1, (done.code, done.stderr)
    assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1, done.stderr


# -- PostgreSQL helpers ---------------------------------------------------------------------------

def admin_url(project: Project, admin: str) -> str:
    return make_url(admin).set(database=make_url(project.url).database).render_as_string(hide_password=False)


def wait_until(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def pg_count(url: str, sql: str) -> int:
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql)).scalar_one()
    finally:
        engine.dispose()


@pytest.fixture
def pg_backend(pg_admin_url: str, tmp_path: Path) -> Iterator[Backend]:
    backend = Backend("postgresql", tmp_path, pg_admin_url)
    yield backend
    backend.drop_all()


# == bounded waits on PostgreSQL ===================================================================

@pytest.mark.parametrize("command", [
    ["labels", "rename", "a", "z"],
    ["commit", "-m", "second", "--allow-empty"],
    ["export", "-f", "coco", "-o", "{out}", "-q"],
])
def test_pg_waits_for_a_table_lock_end_with_busy(pg_backend, pg_admin_url, tmp_path, command):
    """Another session holds LOCK TABLE on labels and annotations: with DSREPO_BUSY_TIMEOUT=2 a
    writer (or a reader) gives up with the same one-line "busy" message as on SQLite, and
    changes nothing."""
    project = pg_backend.create()
    import_dataset(project, "coco", INSTANCES, name="base")
    before = database_contents(project)
    engine = create_engine(admin_url(project, pg_admin_url), poolclass=NullPool)
    try:
        with engine.connect() as holder:
            holder.execute(text("LOCK TABLE labels, annotations IN ACCESS EXCLUSIVE MODE"))
            args = [part.format(out=tmp_path / "out") for part in command]
            done = run(*args, "-p", project.directory, env={"DSREPO_BUSY_TIMEOUT": "2"}, timeout=30)
            holder.rollback()
    finally:
        engine.dispose()
    assert (done.code, done.stderr) == (1, BUSY)
    assert database_contents(project) == before


def test_pg_query_holding_the_writers_lock_makes_writers_busy(pg_backend, pg_admin_url):
    """A `dsrepo query` that takes dsrepo's own advisory lock (and sleeps) does not block
    writers for longer than DSREPO_BUSY_TIMEOUT: they end with the "busy" message."""
    project = pg_backend.create()
    import_dataset(project, "coco", INSTANCES, name="base")
    admin = admin_url(project, pg_admin_url)
    holder = start("query", "-p", project.directory, f"SELECT pg_advisory_lock({WRITERS_LOCK}), pg_sleep(20)")
    wait_until(lambda: pg_count(admin, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted") > 0,
               "the query holds the advisory lock")
    done = run("commit", "-p", project.directory, "-m", "second", "--allow-empty",
               env={"DSREPO_BUSY_TIMEOUT": "2"}, timeout=60)
    holder.send_signal(signal.SIGINT)
    finish(holder)
    assert (done.code, done.stderr) == (1, BUSY)


# == Ctrl-C and --timeout ==========================================================================

def _endless(backend: Backend) -> str:
    return ENDLESS_SQLITE if backend.name == "sqlite" else ENDLESS_PG


def _running(backend: Backend, project: Project, process: subprocess.Popen[str]) -> Any:
    """Whether `process` runs its statement: on SQLite, has the database file open (so it
    has started and connected); on PostgreSQL, has a session sleeping in pg_sleep."""
    if backend.name == "sqlite":
        database = str(Path(make_url(project.url).database).resolve())

        def opened() -> bool:
            descriptors = Path(f"/proc/{process.pid}/fd")
            try:
                return any(os.readlink(fd) == database for fd in descriptors.iterdir())
            except OSError:  # a descriptor closed while we looked
                return False
        return opened
    admin = admin_url(project, backend.admin_url)
    return lambda: pg_count(admin, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'") > 0


def test_ctrl_c_stops_a_long_query(backend):
    """SIGINT (Ctrl-C) stops a query that would run for ever: one line, exit 1, and on
    PostgreSQL no session is left running the statement."""
    project = backend.create()
    import_dataset(project, "coco", INSTANCES, name="base")
    before = database_contents(project)
    process = start("query", "-p", project.directory, _endless(backend))
    running = _running(backend, project, process)
    wait_until(running, "the query runs")
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    done = finish(process, timeout=20)
    one_line(done)
    assert "interrupted" in done.stderr
    if backend.name == "postgresql":
        assert not running()
    assert database_contents(project) == before


@pytest.mark.parametrize("command", ["query", "where"])
def test_timeout_stops_a_long_statement(backend, tmp_path, command):
    """`--timeout 1` ends a statement that would run for ever with one line naming the
    option; an export leaves no output behind."""
    project = backend.create()
    import_dataset(project, "coco", INSTANCES, name="base")
    if command == "query":
        done = run("query", "-p", project.directory, "--timeout", "1", _endless(backend), timeout=60)
    else:
        condition = ("row_id IN (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                     "SELECT x FROM c WHERE x < 0)") if backend.name == "sqlite" else "pg_sleep(600) IS NULL"
        done = run("export", "-p", project.directory, "-f", "coco", "-o", tmp_path / "out", "--where", condition,
                   "--timeout", "1", timeout=60)
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    one_line(done)
    assert "--timeout" in done.stderr


# == query output is streamed ======================================================================

MANY_ROWS = 300_000  # collected whole, they take 70 (csv) to 290 (json) MiB more
EXTRA_MEMORY = 50 * 2**20  # what a streamed query may add to dsrepo's own peak


def _many_rows(backend_name: str) -> str:
    if backend_name == "sqlite":
        return (f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT {MANY_ROWS}) "
                "SELECT x, 'row number ' || x AS label FROM c")
    return f"SELECT x, 'row number ' || x AS label FROM generate_series(1, {MANY_ROWS}) AS x"


def _check_streamed(project: Project, tmp_path: Path, backend_name: str, output: str) -> None:
    baseline = baseline_rss(tmp_path, project.directory)
    done = run_measured("query", "-p", project.directory, "--format", output, _many_rows(backend_name),
                        output=tmp_path / "rows.txt")
    assert done.code == 0, done.stderr
    assert done.peak_rss - baseline < EXTRA_MEMORY, f"{(done.peak_rss - baseline) / 2**20:.0f} MiB above dsrepo info"
    if output == "json":
        rows = json.loads((tmp_path / "rows.txt").read_text())
        assert len(rows) == MANY_ROWS and rows[-1] == {"x": MANY_ROWS, "label": f"row number {MANY_ROWS}"}
    else:
        with (tmp_path / "rows.txt").open() as lines:
            first = next(lines)
            count = 1 + sum(1 for _ in lines)
        assert count == MANY_ROWS + 1 and first.split(",")[0].split()[0] == "x"


def test_query_rows_are_streamed(backend, tmp_path):
    """A query of 300k rows runs in bounded memory: its rows are written as they come (on
    PostgreSQL, fetched from a server-side cursor in batches)."""
    _check_streamed(backend.create(), tmp_path, backend.name, "csv")


@pytest.mark.parametrize("output", ["json", "table"])
def test_every_query_format_is_streamed(tmp_path, output):
    """The same for the other formats (the same code on both databases): JSON is written
    record by record, the table sizes its columns from the first rows."""
    _check_streamed(Project.create(tmp_path / "project"), tmp_path, "sqlite", output)


# == a panoptic PNG's size is checked from its header =================================================

def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header says width x height and whose pixel data is cut short."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_a_panoptic_png_of_the_wrong_size_is_refused_before_decoding(backend, tmp_path):
    """A PNG whose header gives another size than the JSON's image is refused for its size,
    which the header tells without decoding the pixels (a lying or huge PNG costs nothing)."""
    dataset = tmp_path / "coco"
    shutil.copytree(PANOPTIC, dataset)
    document = load_json(dataset / "annotations" / "panoptic_val2017.json")
    record = document["annotations"][0]
    image = next(i for i in document["images"] if i["id"] == record["image_id"])
    (dataset / "annotations" / "panoptic_val2017" / record["file_name"]).write_bytes(_png_header_only(12000, 9000))
    project = backend.create()
    before = database_contents(project)
    result = invoke("import", "-p", project.directory, "-f", "coco_panoptic", "-n", "p", dataset, code=None)
    assert_one_line_error(result)
    assert f"the PNG is 12000x9000 pixels, but the image is {image['width']}x{image['height']}" in result.stderr
    assert database_contents(project) == before


# == round 2: reports are written before the commit ===================================================

def test_an_unwritable_error_report_commits_nothing(backend, tmp_path):
    """`--on-error skip` with a report that cannot be written: one line, exit 1, and the
    import is not committed (the list of skipped records would otherwise be lost)."""
    dataset = tmp_path / "coco"
    shutil.copytree(INSTANCES, dataset)
    path = dataset / "annotations" / "instances_val.json"
    document = load_json(path)
    document["annotations"][0]["bbox"] = "not a box"
    path.write_text(json.dumps(document))
    project = backend.create()
    before = database_contents(project)
    result = invoke("import", "-p", project.directory, "-f", "coco", "-n", "src", dataset, "--on-error", "skip",
                    "--error-report", tmp_path / "missing" / "report.json", code=None)
    assert_one_line_error(result)
    assert str(tmp_path / "missing" / "report.json") in result.stderr
    assert database_contents(project) == before


def test_an_unwritable_merge_report_commits_nothing(backend, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", INSTANCES, name="a")
    import_dataset(project, "coco", INSTANCES, name="b")
    before = database_contents(project)
    result = invoke("merge", "-p", project.directory, "-n", "ab", "--strategy", "intersect", "a", "b",
                    "--report", tmp_path / "missing" / "report.json", code=None)
    assert_one_line_error(result)
    assert database_contents(project) == before


def test_reports_are_in_place_after_the_commit_and_alone(backend, tmp_path):
    """The skip report and the merge report are where asked, whole, with no temporary file
    beside them."""
    dataset = tmp_path / "coco"
    shutil.copytree(INSTANCES, dataset)
    path = dataset / "annotations" / "instances_val.json"
    document = load_json(path)
    bad = document["annotations"][0]
    bad["bbox"] = "not a box"
    path.write_text(json.dumps(document))
    reports = tmp_path / "reports"
    reports.mkdir()
    project = backend.create()
    invoke("import", "-p", project.directory, "-f", "coco", "-n", "a", dataset, "--on-error", "skip",
           "--error-report", reports / "skipped.json", "-q")
    invoke("import", "-p", project.directory, "-f", "coco", "-n", "b", INSTANCES, "-q")
    invoke("merge", "-p", project.directory, "-n", "ab", "--strategy", "intersect", "a", "b",
           "--report", reports / "merge.json", "-q")
    assert _entries(reports) == ["merge.json", "skipped.json"]
    skipped = load_json(reports / "skipped.json")
    assert [(entry["field"], str(bad["id"]) in entry["record"]) for entry in skipped] == [("bbox", True)]
    assert load_json(reports / "merge.json")["merged_source"] == "ab"


def test_a_staged_report_is_dropped_when_its_action_fails(tmp_path):
    """The mechanism behind the above: a report staged in a block that raises never appears,
    and leaves no temporary file."""
    with pytest.raises(RuntimeError), staged_reports() as reports:
        reports.write(tmp_path / "report.json", {"a": 1})
        assert (tmp_path / "report.json").exists() is False
        raise RuntimeError("the commit failed")
    assert _entries(tmp_path) == []
    with staged_reports() as reports:
        reports.write(tmp_path / "report.json", {"a": 1})
    assert _entries(tmp_path) == ["report.json"] and load_json(tmp_path / "report.json") == {"a": 1}


# == round 2: an export is all or nothing ============================================================

def _colliding_project(backend: Backend, tmp_path: Path) -> Project:
    """Sources a (train and val) and b (val only), whose val annotation ids collide: the
    collision is found while the second output file (instances_val.json) is written."""
    project = backend.create()
    import_dataset(project, "coco", INSTANCES, name="a")
    other = tmp_path / "other"
    shutil.copytree(INSTANCES, other)
    path = other / "annotations" / "instances_val.json"
    document = load_json(path)
    for image in document["images"]:
        image["file_name"] = "other_" + image["file_name"]
        image["id"] += 1000
    for annotation in document["annotations"]:
        annotation["image_id"] += 1000
    path.write_text(json.dumps(document))
    (other / "annotations" / "instances_train.json").unlink()
    import_dataset(project, "coco", other, name="b")
    return project


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_failed_export_leaves_the_output_folder_as_it_was(backend, tmp_path):
    """An id collision found while writing the last file: exit 1, one line, and -o does not
    exist afterwards (nor any temporary folder beside it). A retry with --reindex to the same
    -o then succeeds without --overwrite."""
    project = _colliding_project(backend, tmp_path)
    exports = tmp_path / "exports"
    exports.mkdir()
    out = exports / "out"
    result = invoke("export", "-p", project.directory, "-f", "coco", "-o", out, code=None)
    assert_one_line_error(result)
    assert "annotation id" in result.stderr
    assert _entries(exports) == []
    invoke("export", "-p", project.directory, "-f", "coco", "-o", out, "-q", "--", "--reindex")
    assert _entries(out / "annotations") == ["instances_train.json", "instances_val.json"]
    before = _digests(out)
    result = invoke("export", "-p", project.directory, "-f", "coco", "-o", out, "--overwrite", code=None)
    assert_one_line_error(result)
    assert _digests(out) == before and _entries(exports) == ["out"]


def test_overwrite_replaces_the_output_folder_whole(backend, tmp_path):
    """--overwrite leaves no file of an earlier export (a later import would read it)."""
    project = backend.create()
    import_dataset(project, "coco", DATA / "datumaro_coco" / "coco", name="all")
    out = tmp_path / "out"
    invoke("export", "-p", project.directory, "-f", "coco", "-o", out, "-q", "--save-images")
    invoke("export", "-p", project.directory, "-f", "coco_captions", "-o", out, "-q", "--overwrite")
    assert _entries(out) == ["annotations"]
    assert all(name.startswith("captions_") for name in _entries(out / "annotations"))


def _big_dataset(root: Path, subsets: int = 3, images: int = 4000, per_image: int = 5, polygons: bool = True) -> Path:
    annotations = root / "annotations"
    annotations.mkdir(parents=True)
    for number in range(subsets):
        document = {
            "images": [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in range(1, images + 1)],
            "annotations": [
                {"id": i * per_image + k, "image_id": i, "category_id": 1, "bbox": [k, k, 10.5, 20.0], "area": 210.0,
                 "iscrowd": 0} | ({"segmentation": [[k, k, k + 10.0, k, k + 10.0, k + 20.0]]} if polygons else {})
                for i in range(1, images + 1) for k in range(per_image)
            ],
            "categories": [{"id": 1, "name": "thing", "supercategory": ""}],
        }
        (annotations / f"instances_s{number}.json").write_text(json.dumps(document))
    return root


@pytest.fixture(scope="module")
def big_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _big_dataset(tmp_path_factory.mktemp("big") / "big", images=2500, per_image=4)


def test_an_export_killed_half_way_leaves_no_output(backend, tmp_path, big_dataset):
    """SIGKILL as soon as the export has written its first file: -o does not exist, and a
    new export to the same -o succeeds without --overwrite."""
    project = backend.create()
    import_dataset(project, "coco", big_dataset, name="big")
    exports = tmp_path / "exports"
    exports.mkdir()
    out = exports / "out"
    process = start("export", "-p", project.directory, "-f", "coco", "-o", out, "-q")
    wait_until(lambda: any(p.is_file() for p in exports.rglob("*")) or process.poll() is not None,
               "the export writes a file", timeout=120)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the export finished before the kill: the dataset is too small"
    assert not out.exists()
    invoke("export", "-p", project.directory, "-f", "coco", "-o", out, "-q")
    assert _entries(out / "annotations") == ["instances_s0.json", "instances_s1.json", "instances_s2.json"]
    assert _entries(exports) == ["out"]  # what the killed export left beside -o is gone


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_overwrite_killed_half_way_leaves_the_old_output(backend, tmp_path, big_dataset):
    """SIGKILL while `--overwrite` writes: -o holds exactly the earlier export's files."""
    project = backend.create()
    import_dataset(project, "coco", big_dataset, name="big")
    exports = tmp_path / "exports"
    out = exports / "out"
    invoke("export", "-p", project.directory, "-f", "coco_instances", "-o", out, "-q", "--where", "coco_id < 10")
    before = _digests(out)
    assert len(before) == 3
    process = start("export", "-p", project.directory, "-f", "coco", "-o", out, "-q", "--overwrite")
    wait_until(lambda: any(p.is_file() for p in exports.glob(".out.*/**/*")) or process.poll() is not None,
               "the export writes a file", timeout=120)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the export finished before the kill: the dataset is too small"
    assert _digests(out) == before
    invoke("export", "-p", project.directory, "-f", "coco_instances", "-o", out, "-q", "--overwrite")
    assert _entries(exports) == ["out"]
    assert _digests(out).keys() == before.keys() and _digests(out) != before


# == round 2: odd JSON ====================================================================================

@pytest.mark.parametrize("place", ["info", "unknown key"])
@pytest.mark.parametrize("depth", [254, 255, 256])
def test_deeply_nested_json_is_kept_or_refused_with_one_line(backend, tmp_path, depth, place):
    """A file whose `info`, or a top-level key COCO does not define, makes the document nest
    `depth` levels: imported and exported back unchanged, or refused with one line naming the
    file; never a traceback."""
    dataset = tmp_path / "coco"
    shutil.copytree(INSTANCES, dataset)
    path = dataset / "annotations" / "instances_val.json"
    document = load_json(path)
    nested: Any = 1
    for _ in range(depth - 1):  # the document itself is the first level
        nested = [nested]
    document["info" if place == "info" else "deep"] = nested
    path.write_text(json.dumps(document))
    project = backend.create()
    before = database_contents(project)
    result = invoke("import", "-p", project.directory, "-f", "coco", "-n", "deep", dataset, code=None)
    if result.exit_code == 0:
        invoke("export", "-p", project.directory, "-f", "coco", "-o", tmp_path / "out", "-q")
        assert json_difference(document, load_json(tmp_path / "out" / "annotations" / "instances_val.json")) is None
    else:
        assert_one_line_error(result)
        assert "instances_val.json" in result.stderr
        assert database_contents(project) == before


# == round 2: intersect merge ===========================================================

PER_SOURCE = 20_000  # boxes of one image in each source
MERGE_MEMORY = 3 * 2**30  # address space the merge may use (a matrix of all pairs would need 12 GiB)


def _boxes_dataset(root: Path, shift: float) -> Path:
    """One 4000x4000 image with PER_SOURCE disjoint 10x10 boxes on a grid, moved by `shift`."""
    side = 200
    document = {
        "images": [{"id": 1, "file_name": "big.jpg", "width": 4000, "height": 4000}],
        "annotations": [
            {"id": n + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 100.0,
             "bbox": [(n % side) * 20 + shift, (n // side) * 20 + shift, 10.0, 10.0]}
            for n in range(PER_SOURCE)
        ],
        "categories": [{"id": 1, "name": "thing", "supercategory": ""}],
    }
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_val.json").write_text(json.dumps(document))
    return root


def test_intersect_merge_of_many_annotations_on_one_image_is_bounded(backend, tmp_path):
    """Two sources with 20k boxes each on one image, matching one to one: the intersect
    merge finishes within 3 GiB of address space (a matrix of all pairs would need 12 GiB)
    and keeps every match."""
    project = backend.create()
    import_dataset(project, "coco", _boxes_dataset(tmp_path / "a", 0.0), name="a")
    import_dataset(project, "coco", _boxes_dataset(tmp_path / "b", 1.0), name="b")
    done = run_measured("merge", "-p", project.directory, "-n", "ab", "--strategy", "intersect", "--quorum", "2",
                        "a", "b", output=tmp_path / "merge.txt", limit_memory=MERGE_MEMORY,
                        env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    assert done.code == 0, done.stderr[-2000:]
    rows = json.loads(invoke("query", "-p", project.directory, "--format", "json",
                             "SELECT source, count(*) AS n FROM annotations_v GROUP BY source").stdout)
    assert rows == [{"source": "ab", "n": PER_SOURCE}]
