"""Counts that say what they count: an image listed by several files or held by several sources
is one image, in `export`'s summary and in `stats` (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import DATA, load_json
from vizdata import write_extras

PANOPTIC = DATA / "panopticapi_sample" / "coco"


def _listed_images(out: Path) -> set[tuple[str, str]]:
    """(subset, file name) of every image the exported JSON files list, read with json."""
    found = set()
    for path in (out / "annotations").glob("*.json"):
        subset = path.stem.rsplit("_", 1)[1]
        found |= {(subset, image["file_name"]) for image in load_json(path)["images"]}
    return found


def test_export_reports_distinct_images(cli, backend, tmp_path):
    args = backend.create_args()
    cli("create", *args)
    cli("import", "-p", args[1], "-f", "coco", "-n", "sample", PANOPTIC)
    cli("import", "-p", args[1], "-f", "coco", "-n", "extras", write_extras(tmp_path / "extras"))
    out = tmp_path / "out"
    said = cli.text("export", "-p", args[1], "-f", "coco", "-o", out)
    files = sorted((out / "annotations").glob("*.json"))
    listings = sum(len(load_json(path)["images"]) for path in files)
    images = _listed_images(out)
    assert len(files) == 5 and listings > len(images) == 2  # 5 files list the 2 images 9 times
    assert said.startswith(f"exported {len(files)} files, {len(images)} images, ")

