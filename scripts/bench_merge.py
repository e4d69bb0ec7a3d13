"""How `merge --strategy intersect` scales: N images x 3 sources, against Datumaro's
IntersectMerge on the same data in the same run.

Each source is the same generated instances file with its own noise (boxes and polygons
shifted by up to 2 px, 5% of the annotations dropped, 2% relabelled), as three annotators or
vendors would deliver it. dsrepo's time is import of the three sources plus the merge;
Datumaro's is its import of the three plus IntersectMerge (its `merge -m intersect`).

    python scripts/bench_merge.py [--sizes 1000,2500,5000] [--datumaro-sizes 250,500] [--timeout 600]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gen_coco import generate
from repo.importing import import_dataset
from repo.merge import merge_sources
from repo.project import Project

DATUMARO = """
import sys, time
from datumaro.components.dataset import Dataset
from datumaro.components.merge.intersect_merge import IntersectMerge
started = time.perf_counter()
sources = [Dataset.import_from(path, "coco_instances") for path in sys.argv[1:]]
for source in sources:
    for item in source:
        pass
loaded = time.perf_counter()
merged = IntersectMerge(conf=IntersectMerge.Conf(pairwise_dist=0.5, quorum=2))(*sources)
print(loaded - started, time.perf_counter() - loaded, len(merged))
"""


def noisy_copy(document: dict, seed: int) -> dict:
    """One annotator's version of the same images."""
    rng = random.Random(seed)
    result = copy.deepcopy(document)
    category_ids = [c["id"] for c in result["categories"]]
    kept = []
    for annotation in result["annotations"]:
        if rng.random() < 0.05:
            continue
        dx, dy = rng.uniform(-2, 2), rng.uniform(-2, 2)
        x, y, w, h = annotation["bbox"]
        annotation["bbox"] = [round(max(0.0, x + dx), 2), round(max(0.0, y + dy), 2), w, h]
        if isinstance(annotation.get("segmentation"), list):  # Datumaro fails on negative coordinates
            annotation["segmentation"] = [
                [round(max(0.0, v + (dx if i % 2 == 0 else dy)), 2) for i, v in enumerate(part)]
                for part in annotation["segmentation"]
            ]
        if rng.random() < 0.02:
            annotation["category_id"] = rng.choice(category_ids)
        kept.append(annotation)
    result["annotations"] = kept
    return result


def make_sources(root: Path, images: int) -> list[Path]:
    base = root / "base"
    generate(base, images=images, seed=3, tasks=["instances"])
    document = json.loads((base / "annotations" / "instances_val2017.json").read_text())
    folders = []
    for number in range(3):
        folder = root / f"source{number}"
        (folder / "annotations").mkdir(parents=True)
        (folder / "images" / "val2017").mkdir(parents=True)  # Datumaro insists on the folder
        noisy = noisy_copy(document, seed=number)
        (folder / "annotations" / "instances_val2017.json").write_text(json.dumps(noisy))
        folders.append(folder)
    return folders


def run_dsrepo(root: Path, folders: list[Path]) -> tuple[float, float, int]:
    project = Project.create(root / "project")
    started = time.perf_counter()
    for number, folder in enumerate(folders):
        import_dataset(project, "coco_instances", folder, name=f"s{number}")
    imported = time.perf_counter()
    result = merge_sources(project, "merged", ["s0", "s1", "s2"], strategy="intersect", iou=0.5, quorum=2)
    merged = time.perf_counter()
    project.close()
    return imported - started, merged - imported, result.annotations


def run_datumaro(folders: list[Path], timeout: float) -> tuple[float, float, int] | str:
    try:
        done = subprocess.run([sys.executable, "-c", DATUMARO, *map(str, folders)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"did not finish in {timeout:.0f} s"
    if done.returncode:
        return "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    load, merge, items = done.stdout.split()[-3:]
    return float(load), float(merge), int(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2500,5000", help="numbers of images for dsrepo")
    parser.add_argument("--datumaro-sizes", default="250,500", help="numbers of images for Datumaro too")
    parser.add_argument("--timeout", type=float, default=600, help="seconds Datumaro may take per size")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")} | {int(s) for s in args.datumaro_sizes.split(",")})
    datumaro_sizes = {int(s) for s in args.datumaro_sizes.split(",") if s}
    print(f"{'images':>7} {'dsrepo import s':>16} {'merge s':>8} {'ms/image':>9} {'kept':>7}   Datumaro (load s, merge s)")
    for images in sizes:
        with tempfile.TemporaryDirectory(prefix="dsrepo-merge-") as scratch:
            root = Path(scratch)
            folders = make_sources(root, images)
            load, merge, kept = run_dsrepo(root, folders)
            line = f"{images:>7} {load:>16.2f} {merge:>8.2f} {1000 * merge / images:>9.2f} {kept:>7}"
            if images in datumaro_sizes:
                outcome = run_datumaro(folders, args.timeout)
                if isinstance(outcome, str):
                    line += f"   {outcome}"
                else:
                    d_load, d_merge, _ = outcome
                    line += f"   {d_load:.2f}, {d_merge:.2f}: dsrepo's merge is {d_merge / merge:.1f}x faster"
            print(line, flush=True)


if __name__ == "__main__":
    main()
