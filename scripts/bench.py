"""dsrepo's benchmark: round-trip times and peak memory next to Datumaro's and the floor's, in one run.

Figures for dsrepo alone mean little; the reference tool and the raw libraries (bench_floor.py)
measured on the same data, on the same machine and in the same run turn them into ratios that
survive hardware changes. Data comes from the seeded generator `gen_coco.py`, so every run sees
the same files. Scenarios: `all` (instances, captions, image_info, panoptic), `instances`,
`panoptic`; wherever panoptic is in, a second export regenerates every PNG. Every dsrepo export
is checked against the input (JSON equal, PNG pixels equal), so a fast wrong answer cannot pass.
The database write path is compared with the bare driver by bench_writes.py.

Every step (dsrepo create/import/export, the Datumaro script) runs as its own child process
and is measured the same way: wall time, and peak memory as the larger of the kernel's
high-water mark for the process and the sampled RSS sum over the process and its children
(Datumaro and the PostgreSQL helpers may run child processes, which the kernel reports one at a time).
The high-water mark comes from GNU time: wait4() from this process would be wrong, because a
child spawned from a big process inherits that process's high-water mark. Linux only: it
needs /usr/bin/time and /proc.

Usage: python scripts/bench.py [--images N] [--seed S] [--scenarios all,instances,panoptic]
       [--pg-url URL] [--data DIR] [--keep] [--json FILE] [--repeat R]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from bench_floor import UNCOUNTED
from gen_coco import ALL_TASKS, generate
import repo
import repo.migrations
from repo.store.engine import normalize_url

SUBSET = "val2017"
PANOPTIC_DIR = f"panoptic_{SUBSET}"
MB = 1024 * 1024
SAMPLE_EVERY = 0.05  # seconds between RSS samples of a running step
PAGE = os.sysconf("SC_PAGE_SIZE")
GNU_TIME = Path("/usr/bin/time")
FLOOR_SCRIPT = Path(__file__).with_name("bench_floor.py")
WRITES_SCRIPT = Path(__file__).with_name("bench_writes.py")


@dataclass(frozen=True)
class Scenario:
    name: str
    format: str
    tasks: tuple[str, ...]
    relpath: str | None  # dsrepo's -r


# The "all tasks": every task Datumaro can round-trip one by one from one folder.
ROUND_TRIP_TASKS = ("instances", "captions", "image_info", "panoptic")
SCENARIOS = {
    "all": Scenario("all", "coco", ROUND_TRIP_TASKS, None),
    "instances": Scenario("instances", "coco_instances", ("instances",), f"annotations/instances_{SUBSET}.json"),
    "panoptic": Scenario("panoptic", "coco_panoptic", ("panoptic",), None),
}
REGENERATE = {"DSREPO_REGENERATE_PNG": "1"}  # dsrepo's switch: paint and encode every PNG again

# Run by the same interpreter as dsrepo so that both pay the same start-up; prints when the
# data is loaded so that one process yields two phases. Datumaro parses COCO JSON eagerly
# (not streaming), but decodes masks (panoptic PNGs, merged RLE) lazily, during export.
DATUMARO_SCRIPT = """
import json, resource, sys, time
from datumaro.components.dataset import Dataset
path, fmt, out = sys.argv[1:4]
dataset = Dataset.import_from(path, fmt)
items = annotations = 0
for item in dataset:
    items += 1
    annotations += len(item.annotations)
print(json.dumps({"loaded_at": time.time(), "items": items, "annotations": annotations,
                  "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), flush=True)
dataset.export(out, fmt, save_media=False)
"""


# -- measuring a child process ---------------------------------------------------------------

def children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [int(child) for task in tasks for child in (task / "children").read_text().split()]


def tree_rss(root: int) -> int:
    """Bytes resident now in all descendants of `root` (GNU time's pid: itself is not counted)."""
    total, pending = 0, []
    try:
        pending = children(root)
    except OSError:
        return 0  # exited
    while pending:
        pid = pending.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
            pending.extend(children(pid))
        except (OSError, IndexError, ValueError):
            continue  # exited between two reads
    return total


class Sampler(threading.Thread):
    """Polls tree_rss while a step runs: the only way to see the sum over child processes."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.samples.append((time.time(), tree_rss(self.pid)))
            self._done.wait(SAMPLE_EVERY)

    def stop(self) -> None:
        self._done.set()
        self.join()


@dataclass
class Step:
    seconds: float
    kernel_mb: float  # the kernel's high-water mark: the largest single process of the step
    tree_mb: float  # sampled peak of the sum over the process and its children

    @property
    def peak_mb(self) -> float:
        return max(self.kernel_mb, self.tree_mb)


@dataclass
class Child:
    step: Step
    status: int
    stdout: str
    stderr: str
    started_at: float
    samples: list[tuple[float, int]]


def run_child(argv: list[str], env: dict[str, str]) -> Child:
    """Run argv to completion under GNU time, which reports the child's own peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rss_file:
        started_at, start = time.time(), time.perf_counter()
        pid = os.posix_spawn(GNU_TIME, [str(GNU_TIME), "-f", "%M", "-o", rss_file.name, *argv], env, file_actions=[
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
        sampler = Sampler(pid)
        sampler.start()
        _, status = os.waitpid(pid, 0)
        seconds = time.perf_counter() - start
        sampler.stop()
        kernel_kb = int(rss_file.read().split()[-1])  # a failed child adds a "Command exited..." line first
        out.seek(0)
        err.seek(0)
        peak_tree = max((rss for _, rss in sampler.samples), default=0)
        return Child(Step(seconds, kernel_kb * 1024 / MB, peak_tree / MB), os.waitstatus_to_exitcode(status),
                     out.read().decode(errors="replace"), err.read().decode(errors="replace"), started_at,
                     sampler.samples)


# -- data ------------------------------------------------------------------------------------

def json_name(task: str) -> str:
    return f"{task}_{SUBSET}.json"


def make_view(data: Path, scenario: Scenario, views: Path) -> Path:
    """A folder with only the scenario's files, and the images/ dir Datumaro insists on. JSON
    files are symlinks; image and PNG folders are real folders of hard links (copies across
    file systems), since dsrepo does not read an image or PNG whose symlink leads out of the
    dataset folder."""
    view = views / scenario.name
    (view / "annotations").mkdir(parents=True)
    for task in scenario.tasks:
        (view / "annotations" / json_name(task)).symlink_to((data / "annotations" / json_name(task)).resolve())
    if "panoptic" in scenario.tasks:
        shutil.copytree(data / "annotations" / PANOPTIC_DIR, view / "annotations" / PANOPTIC_DIR, copy_function=_link)
    if (data / "images").is_dir():
        shutil.copytree(data / "images", view / "images", copy_function=_link)
    else:
        (view / "images" / SUBSET).mkdir(parents=True)
    return view


def _link(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def describe_data(view: Path, scenario: Scenario) -> dict[str, Any]:
    """What the scenario feeds the tools: counts and sizes, for the report."""
    images: set[int] = set()
    stats: dict[str, Any] = {"json_files": 0, "json_mb": 0.0, "annotations": 0}
    for task in scenario.tasks:
        path = view / "annotations" / json_name(task)
        data = json.loads(path.read_bytes())
        images.update(image["id"] for image in data.get("images", []))
        stats["json_files"] += 1
        stats["json_mb"] += path.stat().st_size / MB
        stats["annotations"] += len(data.get("annotations", []))
        if task == "panoptic":
            stats["panoptic_segments"] = sum(len(a["segments_info"]) for a in data["annotations"])
            pngs = list((view / "annotations" / PANOPTIC_DIR).iterdir())
            stats["png_files"] = len(pngs)
            stats["png_mb"] = sum(png.stat().st_size for png in pngs) / MB
    stats["images"] = len(images)
    return stats


def png_pixels(path: Path) -> Any:
    """A PNG's RGB pixels decoded by Pillow: the independent oracle of a panoptic export."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def check_export(view: Path, out: Path, scenario: Scenario) -> str:
    """OK when every exported JSON parses equal to its input and every panoptic PNG decodes (Pillow)
    to the input's pixels; says how many PNGs are also byte-identical."""
    wrong = []
    for task in scenario.tasks:
        name = json_name(task)
        exported = out / "annotations" / name
        original = json.loads((view / "annotations" / name).read_bytes())
        if not exported.is_file() or json.loads(exported.read_bytes()) != original:
            wrong.append(name)
    identical = 0
    if "panoptic" in scenario.tasks:
        originals = sorted((view / "annotations" / PANOPTIC_DIR).iterdir())
        written = out / "annotations" / PANOPTIC_DIR
        if not written.is_dir() or {p.name for p in written.iterdir()} != {p.name for p in originals}:
            wrong.append(f"{PANOPTIC_DIR}/ (file names)")
        else:
            for original in originals:
                copy = written / original.name
                if copy.read_bytes() == original.read_bytes():
                    identical += 1
                elif not (png_pixels(copy) == png_pixels(original)).all():
                    wrong.append(f"{PANOPTIC_DIR}/{original.name}")
                    break
    if wrong:
        return "MISMATCH " + ", ".join(wrong)
    return f"OK ({identical} PNG same bytes)" if "panoptic" in scenario.tasks else "OK"


# -- the tools -------------------------------------------------------------------------------

ROUND_TRIP = ("create", "import", "export")  # the steps a round trip's total adds up


@dataclass
class Result:
    """One tool on one scenario, one run: steps by name, database size, export check; for
    Datumaro, run task by task, also each task's own result."""
    steps: dict[str, Step]
    db_mb: float | None = None
    check: str | None = None
    notes: list[str] = field(default_factory=list)
    by_task: dict[str, "Result"] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return sum(step.seconds for name, step in self.steps.items() if name in ROUND_TRIP)

    @property
    def peak_mb(self) -> float:
        return max(step.peak_mb for name, step in self.steps.items() if name in ROUND_TRIP)


class Postgres:
    """Throw-away databases on a server given by an admin URL."""

    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self.url = sa.make_url(normalize_url(admin_url))
        self.engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)

    def create(self, name: str) -> str:
        with self.engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        return self.url.set(database=name).render_as_string(hide_password=False)

    def size_mb(self, name: str) -> float:
        with self.engine.connect() as connection:
            return connection.execute(sa.text("SELECT pg_database_size(:name)"), {"name": name}).scalar_one() / MB

    def drop(self, name: str) -> None:
        with self.engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def dsrepo_step(env: dict[str, str], *args: str) -> Step:
    child = run_child([sys.executable, "-m", "repo.cli", *args, "--quiet"], env)
    if child.status != 0:
        raise RuntimeError(f"dsrepo {args[0]} failed ({child.status}): {child.stderr.strip()}")
    return child.step


def run_dsrepo(scenario: Scenario, view: Path, work: Path, env: dict[str, str], pg: Postgres | None,
               db_name: str) -> Result:
    """create, import, export in fresh places, then (panoptic) an export that regenerates every
    PNG; the database size is read after the exports, and every export is checked."""
    project, out, regenerated = work / "project", work / "export", work / "regenerated"
    url = pg.create(db_name) if pg else None
    try:
        steps = {"create": dsrepo_step(env, "create", "-p", str(project), *(["--db", url] if url else []))}
        relpath = ["-r", scenario.relpath] if scenario.relpath else []
        steps["import"] = dsrepo_step(env, "import", "-p", str(project), "-f", scenario.format, str(view), *relpath)
        export = ["export", "-p", str(project), "-f", scenario.format, "-o"]
        steps["export"] = dsrepo_step(env, *export, str(out))
        checks = [check_export(view, out, scenario)]
        if "panoptic" in scenario.tasks:
            steps["regenerate"] = dsrepo_step(env | REGENERATE, *export, str(regenerated))
            checks.append("regenerated " + check_export(view, regenerated, scenario))
        db_mb = pg.size_mb(db_name) if pg else sum(p.stat().st_size for p in project.glob("project.db*")) / MB
    finally:
        if pg:
            pg.drop(db_name)
    return Result(steps, db_mb, "; ".join(checks))


def error_text(stderr: str) -> str:
    """The exception lines of a traceback ('FooError: message'), else its last line."""
    found = re.findall(r"^[\w.]*(?:Error|Exception)\w*: .*$", stderr, re.MULTILINE)
    lines = list(dict.fromkeys(found)) or stderr.strip().splitlines()[-1:] or ["no error output"]
    return " <- ".join(reversed(lines))


def run_datumaro_task(task: str, data: Path, work: Path, env: dict[str, str]) -> Result | str:
    """Datumaro's import (to fully loaded items) and export of one task, in one child."""
    view = make_view(data, Scenario(task, f"coco_{task}", (task,), None), work / "views")
    child = run_child([sys.executable, "-c", DATUMARO_SCRIPT, str(view), f"coco_{task}", str(work / f"export-{task}")],
                      env)
    loaded = next((json.loads(line) for line in child.stdout.splitlines() if line.startswith('{"loaded_at"')), None)
    if child.status != 0 or loaded is None:
        return f"{task} FAILED ({'export' if loaded else 'import'}): {error_text(child.stderr)}"
    before = [rss for at, rss in child.samples if at <= loaded["loaded_at"]]
    after = [rss for at, rss in child.samples if at > loaded["loaded_at"]]
    imported = Step(loaded["loaded_at"] - child.started_at, loaded["rss_kb"] * 1024 / MB, max(before, default=0) / MB)
    # The kernel's high-water mark cannot be split by phase: the export is the whole process's peak.
    exported = Step(child.step.seconds - imported.seconds, child.step.kernel_mb, max(after, default=0) / MB)
    return Result({"import": imported, "export": exported},
                  notes=[f"{task}: {loaded['items']} items, {loaded['annotations']} annotation objects"])


def run_datumaro(scenario: Scenario, data: Path, work: Path, env: dict[str, str]) -> Result | str:
    """Datumaro doing the scenario's tasks one by one, a process each (its `coco` importer keeps one
    label-bearing task per folder); times add up, the peak is the largest process's. A task it
    fails on is left out of its totals, which favours it, and said in the notes."""
    results = {task: run_datumaro_task(task, data, work, env) for task in scenario.tasks}
    done = {task: result for task, result in results.items() if isinstance(result, Result)}
    failures = [result for result in results.values() if isinstance(result, str)]
    if not done:
        return "; ".join(failures)
    steps = {name: Step(sum(r.steps[name].seconds for r in done.values()),
                        max(r.steps[name].kernel_mb for r in done.values()),
                        max(r.steps[name].tree_mb for r in done.values())) for name in ("import", "export")}
    notes = [note for result in done.values() for note in result.notes]
    notes += [f"{failure} (left out of Datumaro's totals)" for failure in failures]
    return Result(steps, notes=notes, by_task=done)


def run_floor(scenario: Scenario, view: Path, work: Path, env: dict[str, str]) -> Result:
    """The raw-library floor (bench_floor.py), each phase its own process like dsrepo's steps."""
    work.mkdir(parents=True, exist_ok=True)
    phases = ["import", "export"] + (["regenerate"] if "panoptic" in scenario.tasks else [])
    steps, notes = {}, []
    for phase in phases:
        child = run_child([sys.executable, str(FLOOR_SCRIPT), phase, str(view), str(work), ",".join(scenario.tasks)],
                          env)
        if child.status != 0:
            raise RuntimeError(f"bench_floor.py {phase} failed: {error_text(child.stderr)}")
        split = json.loads(child.stdout.splitlines()[-1])
        uncounted = split.pop(UNCOUNTED, 0.0)
        steps[phase] = replace(child.step, seconds=child.step.seconds - uncounted)
        notes.append(f"{phase} " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in split.items()))
    return Result(steps, notes=notes)


def best(results: list[Result]) -> Result:
    """Each figure's minimum over the runs (the least disturbed measurement); checks must all pass."""
    names = results[0].steps
    steps = {name: Step(*(min(getattr(r.steps[name], f) for r in results)
                          for f in ("seconds", "kernel_mb", "tree_mb"))) for name in names}
    checks = {r.check for r in results}
    check = next((c for c in checks if c and "MISMATCH" in c), results[0].check)
    db = [r.db_mb for r in results if r.db_mb is not None]
    by_task = {task: best([r.by_task[task] for r in results]) for task in results[0].by_task}
    return Result(steps, min(db) if db else None, check, results[0].notes, by_task)


# -- report ----------------------------------------------------------------------------------

def data_line(name: str, stats: dict[str, Any]) -> str:
    line = f"  {name:<10} {stats['json_files']} JSON {stats['json_mb']:.1f} MB"
    if "png_files" in stats:
        line += f" + {stats['png_files']} PNG {stats['png_mb']:.1f} MB"
    line += f"; {stats['images']} images, {stats['annotations']} annotations"
    if "panoptic_segments" in stats:
        line += f" (panoptic: {stats['panoptic_segments']} segments)"
    return line


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    def line(row: list[str]) -> str:
        return "  ".join(cell.ljust(w) if i < 2 or i == len(row) - 1 else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(row, widths)))

    return "\n".join(line(row).rstrip() for row in rows)


def seconds(result: Result, step: str) -> str:
    return f"{result.steps[step].seconds:.2f}" if step in result.steps else "-"


def figures_row(scenario: str, tool: str, result: Result) -> list[str]:
    steps = result.steps
    megabytes = [f"{steps[name].peak_mb:.0f}" if name in steps else "-" for name in ("import", "export")]
    return [scenario, tool, seconds(result, "create"), seconds(result, "import"), seconds(result, "export"),
            f"{result.total_s:.2f}", *megabytes, f"{result.peak_mb:.0f}", seconds(result, "regenerate"),
            f"{result.db_mb:.1f}" if result.db_mb is not None else "-", result.check or "-"]


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "-"


def comparisons(name: str, tool: str, dsrepo: Result, datumaro: Result | str, floor: Result) -> list[str]:
    """The ratios that matter, one line each: against Datumaro, against the floor."""
    lines = []
    if isinstance(datumaro, Result):
        lines.append(f"  {name:<10} {tool:<18} vs Datumaro: {ratio(datumaro.total_s, dsrepo.total_s)} faster "
                     f"(total {dsrepo.total_s:.2f} vs {datumaro.total_s:.2f} s), "
                     f"{ratio(dsrepo.peak_mb, datumaro.peak_mb)} the memory ({dsrepo.peak_mb:.0f} vs "
                     f"{datumaro.peak_mb:.0f} MB)")
        if "regenerate" in dsrepo.steps and "panoptic" in datumaro.by_task:
            theirs = datumaro.by_task["panoptic"].steps["export"].seconds
            lines.append(f"  {name:<10} {tool:<18} forced PNG regeneration vs Datumaro's panoptic export: "
                         f"{ratio(theirs, dsrepo.steps['regenerate'].seconds)} faster "
                         f"({dsrepo.steps['regenerate'].seconds:.2f} vs {theirs:.2f} s)")
    else:
        lines.append(f"  {name:<10} {tool:<18} vs Datumaro: no comparison, Datumaro failed")
    floors = ", ".join(f"{step} {ratio(dsrepo.steps[step].seconds, floor.steps[step].seconds)}"
                       for step in ("import", "export", "regenerate") if step in floor.steps and step in dsrepo.steps)
    lines.append(f"  {name:<10} {tool:<18} vs the floor (dsrepo / raw libraries, whole processes): {floors}")
    return lines


def report(by_scenario: dict[str, dict[str, Any]]) -> str:
    header = ["scenario", "tool", "create s", "import s", "export s", "total s", "import MB", "export MB",
              "peak MB", "regen s", "DB MB", "check"]
    rows, ratios, notes = [header], [], []
    for name, entry in by_scenario.items():
        datumaro, floor = entry["tools"]["datumaro"]["best"], entry["tools"]["floor"]["best"]
        for tool, figures in entry["tools"].items():
            if isinstance(figures["best"], str):
                rows.append([name, tool, "FAILED"] + [""] * (len(header) - 3))
                continue
            rows.append(figures_row(name, tool, figures["best"]))
            if tool.startswith("dsrepo"):
                ratios += comparisons(name, tool, figures["best"], datumaro, floor)
        notes += [f"  {name}: Datumaro {note}" for note in (datumaro.notes if isinstance(datumaro, Result) else [datumaro])]
        notes += [f"  {name}: floor {note}" for note in floor.notes]
    return "\n".join([table(rows), "", "Ratios (totals = create + import + export; peak = max over those steps):",
                      *ratios, "", "Details:", *notes])


NOTES = """\
Notes:
  - Each step is a fresh process (interpreter start-up included). dsrepo's total includes `create`,
    which Datumaro has no counterpart for. Datumaro runs each task's import and export in one
    process, task after task (its `coco` importer keeps one label-bearing task per folder); its
    times add up over the tasks, its peak is the largest task process's, including the loaded dataset.
  - Datumaro decodes masks lazily: for panoptic it reads the PNGs during export, not import, so
    compare totals rather than the import column.
  - "regen s" is a second dsrepo export with DSREPO_REGENERATE_PNG=1 (every PNG painted and encoded
    again); it is compared with Datumaro's panoptic export, which always encodes.
  - The floor (bench_floor.py) is the same data through raw libraries: orjson, sqlite3 executemany,
    libspng (imagecodecs) decode on every core; select + orjson dump + PNG bytes written; ISA-L encode. No
    validation, versions or lossless bookkeeping. It runs on SQLite only.
  - check: every export's JSON parses equal to the input, every PNG decodes (Pillow) to the input's
    pixels; "same bytes" counts PNGs written byte for byte as imported.
  - Peak MB is the larger of the kernel's per-process high-water mark and the sampled RSS sum over
    the step's processes; a PostgreSQL server's own memory is not counted.
  - With --repeat, every figure is its minimum over the runs."""


# -- main ------------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark dsrepo against Datumaro on generated COCO data.")
    parser.add_argument("--images", type=int, default=5000, help="images to generate (default 5000, val2017's size)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated: " + ",".join(SCENARIOS))
    parser.add_argument("--pg-url", help="PostgreSQL admin URL; also benchmark dsrepo on a fresh database there")
    parser.add_argument("--data", type=Path, help="use this COCO folder instead of generating one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (data, projects, exports)")
    parser.add_argument("--json", type=Path, help="also write the raw figures to this file")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the best is reported")
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown or not args.scenarios:
        parser.error(f"--scenarios: choose from {', '.join(SCENARIOS)}")
    if args.repeat < 1 or args.images < 1:
        parser.error("--repeat and --images must be at least 1")
    if args.data:
        needed = {json_name(task) for name in args.scenarios for task in SCENARIOS[name].tasks}
        missing = sorted(n for n in needed if not (args.data / "annotations" / n).is_file())
        if missing:
            parser.error(f"--data {args.data}: missing annotations/{', '.join(missing)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not GNU_TIME.is_file():
        sys.exit(f"bench.py needs GNU time at {GNU_TIME} (Debian/Ubuntu: apt-get install time)")
    # Bytecode for dsrepo's modules, as pip leaves for Datumaro's: with PYTHONDONTWRITEBYTECODE
    # set, every dsrepo process would otherwise compile them again (0.1 s a start).
    for package in (repo, repo.migrations):
        compileall.compile_dir(Path(package.__file__).parent, quiet=1)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    scenarios = [SCENARIOS[name] for name in args.scenarios]
    temp = Path(tempfile.mkdtemp(prefix="dsrepo-bench-"))
    env = {k: v for k, v in os.environ.items() if k != "DSREPO_DB"}  # it would override the project's database
    pg = Postgres(args.pg_url) if args.pg_url else None
    backends = ["sqlite"] + (["postgresql"] if pg else [])
    try:
        if args.data:
            data, origin = args.data.resolve(), "given"
        else:
            data = temp / "data"
            tasks = [t for t in ALL_TASKS if any(t in s.tasks for s in scenarios)]
            generation = time.perf_counter()
            generate(data, images=args.images, seed=args.seed, tasks=tasks, subset=SUBSET)
            origin = f"generated, {args.images} images, seed {args.seed}, {time.perf_counter() - generation:.1f} s"
        print(f"data: {data} ({origin})", flush=True)
        by_scenario: dict[str, dict[str, Any]] = {}
        for scenario in scenarios:
            view = make_view(data, scenario, temp / "views")
            stats = describe_data(view, scenario)
            print(data_line(scenario.name, stats), flush=True)
            runs: dict[str, list[Result | str]] = {f"dsrepo/{b}": [] for b in backends} | {"datumaro": [], "floor": []}
            for attempt in range(args.repeat):
                for backend in backends:
                    work = temp / "runs" / f"{scenario.name}-{backend}-{attempt}"
                    runs[f"dsrepo/{backend}"].append(run_dsrepo(
                        scenario, view, work, env, pg if backend == "postgresql" else None,
                        f"bench_{scenario.name}_{os.getpid()}_{attempt}"))
                work = temp / "runs" / f"{scenario.name}-datumaro-{attempt}"
                runs["datumaro"].append(run_datumaro(scenario, data, work, env))
                runs["floor"].append(run_floor(scenario, view, temp / "runs" / f"{scenario.name}-floor-{attempt}", env))
                if not args.keep:
                    shutil.rmtree(temp / "runs")
            tools = {}
            for tool, results in runs.items():
                failures = [r for r in results if isinstance(r, str)]
                tools[tool] = {"best": failures[0] if failures else best(results), "runs": results}
            by_scenario[scenario.name] = {"data": stats, "tools": tools}
        print()
        print(report(by_scenario))
        print()
        print(writes(data, args, env))
        print()
        print(NOTES)
        machine = {"seconds": time.perf_counter() - started, "cpus": os.cpu_count(),
                   "python": sys.version.split()[0], "load_before": load_before, "load_after": os.getloadavg()[0]}
        print(f"\nbenchmark took {machine['seconds']:.1f} s ({machine['cpus']} CPUs, Python {machine['python']}, "
              f"load average {load_before:.2f} before, {machine['load_after']:.2f} after: other work disturbs "
              "the figures)")
        if args.json:
            args.json.write_text(json.dumps(raw_figures(args, data, by_scenario, machine), indent=2) + "\n")
    finally:
        if args.keep:
            print(f"kept {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)
    return 0


def writes(data: Path, args: argparse.Namespace, env: dict[str, str]) -> str:
    """bench_writes.py on the instances file: dsrepo's inserts against the raw driver's."""
    instances = data / "annotations" / json_name("instances")
    if not instances.is_file():
        return "Database writes: no instances file in the data"
    pg = ["--pg-url", args.pg_url] if args.pg_url else []
    child = run_child([sys.executable, str(WRITES_SCRIPT), str(instances), "--repeat", str(max(args.repeat, 2)), *pg],
                      env)
    if child.status != 0:
        return f"Database writes: bench_writes.py failed: {error_text(child.stderr)}"
    return "Database writes (insert_rows vs the bare driver, same rows, instances file):\n" + "\n".join(
        f"  {line}" for line in child.stdout.splitlines())


def as_json(result: Result | str) -> Any:
    if isinstance(result, str):
        return {"error": result}
    return {**asdict(result), "total_s": result.total_s, "peak_mb": result.peak_mb}


def raw_figures(args: argparse.Namespace, data: Path, by_scenario: dict[str, dict[str, Any]],
                machine: dict[str, Any]) -> dict[str, Any]:
    return {
        "images": args.images, "seed": args.seed, "data": str(data), "repeat": args.repeat, **machine,
        "scenarios": {name: {"data": entry["data"],
                             "tools": {tool: {"best": as_json(f["best"]), "runs": [as_json(r) for r in f["runs"]]}
                                       for tool, f in entry["tools"].items()}}
                      for name, entry in by_scenario.items()},
    }


if __name__ == "__main__":
    sys.exit(main())
