"""How close dsrepo's JSON reading comes to the parse floor: `read_task_file` against `orjson.loads`.

Reading a file means parsing it and validating every record; the parse alone (orjson, from bytes
already in memory) is the floor no reader can beat. The ratio read / parse says what validation
costs on top of it, a figure that survives hardware changes. Each file is timed `--repeat` times,
alternating the two, and the minimum of each is kept. Files above the windowed-reading threshold
(repo.coco.reader.WINDOWED_BYTES) are read in windows, as an import reads them; their parts are
drained so that every record is checked.

Usage: python scripts/bench_reader.py [--repeat R] [--profile] FILE[:TASK] ...
(the task defaults to the file name's prefix: instances, captions, person_keypoints, ...).
The `repo` measured is the one Python imports (the editable install's checkout): from another
worktree, run it with PYTHONPATH set to that worktree. The first line printed names it.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time
from pathlib import Path

import orjson

import repo
from repo.coco.reader import read_task_file
from repo.coco.tasks import split_file_name
from repo.model.policy import ErrorPolicy


def task_of(path: Path) -> str:
    """The task a COCO file name starts with (`person_keypoints_val2017.json`: person_keypoints)."""
    split = split_file_name(path.name)
    if split is None:
        raise SystemExit(f"{path}: cannot tell the task from the name; write FILE:TASK")
    return split[0]


def parse_seconds(path: Path) -> float:
    data = path.read_bytes()
    start = time.perf_counter()
    orjson.loads(data)
    return time.perf_counter() - start


def read_seconds(path: Path, task: str) -> float:
    """Reading and validating everything, from the file (its reading and parsing included)."""
    start = time.perf_counter()
    task_file = read_task_file(path, path.name, task, "bench", ErrorPolicy())
    for _ in task_file.parts or ():
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print the reader's top functions by own time")
    args = parser.parse_args()
    print(f"repo: {Path(repo.__file__).parent}")
    gc.disable()  # as an import runs: the cyclic collector is paused while records are built
    for spec in args.files:
        name, _, task = spec.partition(":")
        path = Path(name)
        task = task or task_of(path)
        parses, reads = [], []
        for _ in range(args.repeat):
            parses.append(parse_seconds(path))
            gc.collect()
            reads.append(read_seconds(path, task))
            gc.collect()
        parse, read = min(parses), min(reads)
        print(f"{path.name:36} {task:17} parse {parse:7.3f} s  read {read:7.3f} s  read/parse {read / parse:5.2f}")
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(read_seconds, path, task)
            pstats.Stats(profile).sort_stats("tottime").print_stats(18)
            gc.collect()


if __name__ == "__main__":
    main()
