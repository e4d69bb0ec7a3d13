"""The floor under a COCO import and export: the same data through raw libraries, nothing else.

What any tool must at least do to keep a COCO folder in a database and write it back: parse the
JSON (orjson), insert one row per image and per annotation (sqlite3 `executemany`, one
transaction), decode the panoptic PNGs (libspng through imagecodecs, the fastest decoder
measured here, one thread per core); then select the rows,
write the JSON (orjson, stored objects spliced as they are) and write the PNG bytes; or, to
regenerate PNGs, pack and deflate every image (ISA-L). No validation, no versions, no
lossless bookkeeping: a tool near these figures has little left to shave.

bench.py runs each phase as its own process, so that interpreter start-up and imports count as
they do for dsrepo's commands. A phase prints its own split in seconds, as one JSON line.

Usage: python scripts/bench_floor.py import|export|regenerate VIEW WORK TASK[,TASK...]
"""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import struct
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

SUBSET = "val2017"
PANOPTIC_DIR = f"panoptic_{SUBSET}"
SECTIONS = ("images", "annotations")
UNCOUNTED = "not counted"  # seconds of a phase's process spent on set-up that is not the floor


def parse(view: Path, tasks: list[str]) -> dict[str, dict]:
    return {task: orjson.loads((view / "annotations" / f"{task}_{SUBSET}.json").read_bytes()) for task in tasks}


def insert(database: Path, documents: dict[str, dict]) -> None:
    """One table per task and section; a row is the record's key columns and its JSON text."""
    connection = sqlite3.connect(database)
    with connection:
        for task, document in documents.items():
            header = {key: value for key, value in document.items() if key not in SECTIONS}
            connection.execute(f"CREATE TABLE {task}_header (body TEXT)")
            connection.execute(f"INSERT INTO {task}_header VALUES (?)", (orjson.dumps(header).decode(),))
            for section in SECTIONS:
                table = f"{task}_{section}"
                connection.execute(f"CREATE TABLE {table} (id INTEGER, image_id INTEGER, body TEXT)")
                connection.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", (
                    (record.get("id"), record.get("image_id"), orjson.dumps(record).decode())
                    for record in document.get(section, [])))
    connection.close()


def png_paths(view: Path) -> list[Path]:
    return sorted((view / "annotations" / PANOPTIC_DIR).iterdir())


def decode(path: Path):
    """The RGB pixels of a PNG (libspng releases the GIL: threads decode side by side)."""
    from imagecodecs import spng_decode

    return spng_decode(path.read_bytes())


def decode_all(paths: list[Path]) -> None:
    """Decode every PNG once, keeping nothing: an importer keeps masks, not pixels."""
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        for _ in pool.map(lambda path: decode(path).shape, paths):
            pass


def dump(database: Path, out: Path, tasks: list[str]) -> None:
    """Select every row back and write each task's file, splicing the stored JSON text."""
    connection = sqlite3.connect(database)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for task in tasks:
        document = orjson.loads(connection.execute(f"SELECT body FROM {task}_header").fetchone()[0])
        for section in SECTIONS:
            rows = connection.execute(f"SELECT body FROM {task}_{section} ORDER BY rowid")
            document[section] = [orjson.Fragment(body) for (body,) in rows]
        (out / "annotations" / f"{task}_{SUBSET}.json").write_bytes(orjson.dumps(document))
    connection.close()


def copy_pngs(paths: list[Path], out: Path) -> None:
    folder = out / "annotations" / PANOPTIC_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        (folder / path.name).write_bytes(path.read_bytes())


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode(image) -> bytes:
    """An 8-bit RGB PNG of decoded RGB pixels: filter byte 0 per row, ISA-L deflate level 1."""
    import numpy as np
    from isal import isal_zlib

    height, width = image.shape[:2]
    rows = np.zeros((height, width * 3 + 1), np.uint8)
    rows[:, 1:] = image[..., :3].reshape(height, width * 3)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", isal_zlib.compress(rows.tobytes(), 1)) + _chunk(b"IEND", b""))


def encode_all(paths: list[Path], out: Path) -> float:
    """Decode each PNG and encode it again into `out`; the seconds of encoding and writing alone,
    summed over the threads and divided by their number (their wall time, as they overlap)."""
    folder = out / "annotations" / PANOPTIC_DIR
    folder.mkdir(parents=True, exist_ok=True)

    def regenerate(path: Path) -> float:
        image = decode(path)
        start = time.perf_counter()
        (folder / path.name).write_bytes(encode(image))
        return time.perf_counter() - start

    threads = os.cpu_count() or 1
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(regenerate, paths)) / threads


def timed(split: dict[str, float], name: str, work, *args):
    start = time.perf_counter()
    value = work(*args)
    split[name] = time.perf_counter() - start
    return value


def main(phase: str, view: Path, work: Path, tasks: list[str]) -> dict[str, float]:
    gc.disable()  # parsed COCO holds no cycles; a tool that knows this pays no collections
    split: dict[str, float] = {}
    database, out = work / "floor.db", work / f"floor-{phase}"
    pngs = png_paths(view) if "panoptic" in tasks else []
    if phase == "import":
        documents = timed(split, "parse", parse, view, tasks)
        timed(split, "insert", insert, database, documents)
        if pngs:
            timed(split, "decode", decode_all, pngs)
    elif phase == "export":
        timed(split, "select + dump", dump, database, out, tasks)
        if pngs:
            timed(split, "write PNG bytes", copy_pngs, pngs, out)
    elif phase == "regenerate":
        # Regeneration starts from pixels in memory: decoding them here is not part of the floor.
        start = time.perf_counter()
        split["encode"] = encode_all(pngs, out)
        split[UNCOUNTED] = time.perf_counter() - start - split["encode"]
    else:
        raise SystemExit(f"unknown phase {phase!r}: import, export or regenerate")
    return split


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__.strip().splitlines()[-1])
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4].split(","))), flush=True)
