"""Intersect merge of one image with N annotations per source (two sources, each box matching
one box of the other): time of the merge and peak memory of the process, per N.

Each N runs in a fresh process on a SQLite project in a temporary folder. Boxes lie on a
grid (as many small objects in one aerial or microscope image); `--polygons` gives each a
polygon, so that IoU is computed on masks.

    python scripts/bench_intersect.py [--sizes 1000,4000,20000] [--polygons]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from repo.importing import import_dataset
from repo.merge import merge_sources
from repo.project import Project


def dataset(root: Path, count: int, shift: float, polygons: bool) -> Path:
    side = max(int(count ** 0.5), 1)
    annotations = []
    for n in range(count):
        x, y = (n % side) * 20 + shift, (n // side) * 20 + shift
        annotation = {"id": n + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 100.0,
                      "bbox": [x, y, 10.0, 10.0]}
        if polygons:
            annotation["segmentation"] = [[x, y, x + 10.0, y, x + 10.0, y + 10.0, x, y + 10.0]]
        annotations.append(annotation)
    width, height = side * 20 + 20, (count // side + 1) * 20 + 20
    document = {"images": [{"id": 1, "file_name": "big.jpg", "width": width, "height": height}],
                "annotations": annotations, "categories": [{"id": 1, "name": "thing", "supercategory": ""}]}
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_val.json").write_text(json.dumps(document))
    return root


def one(count: int, polygons: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        project = Project.create(root / "project")
        import_dataset(project, "coco", dataset(root / "a", count, 0.0, polygons), name="a")
        import_dataset(project, "coco", dataset(root / "b", count, 1.0, polygons), name="b")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        result = merge_sources(project, "ab", ["a", "b"], strategy="intersect", quorum=2)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"n": count, "merge_s": round(seconds, 2), "peak_mib": round(peak), "peak_before_merge_mib": round(before),
                "kept": result.annotations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,4000,20000")
    parser.add_argument("--polygons", action="store_true")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.polygons)))
        return
    for count in (int(size) for size in args.sizes.split(",")):
        command = [sys.executable, __file__, "--one", str(count)] + (["--polygons"] if args.polygons else [])
        print(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
