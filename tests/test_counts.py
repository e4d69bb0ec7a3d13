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


def _instances(file_names: list[str], annotated: str) -> dict:
    return {
        "images": [{"id": n, "file_name": name, "width": 40, "height": 30} for n, name in enumerate(file_names, 1)],
        "annotations": [{"id": 1, "image_id": file_names.index(annotated) + 1, "category_id": 1,
                         "bbox": [1.0, 2.0, 3.0, 4.0], "area": 12.0, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "thing"}],
    }


def test_stats_count_an_image_of_two_sources_once(cli, backend, tmp_path):
    # Both sources list x, y and z; a annotates x, b annotates y: z alone has no annotation.
    names = ["x.jpg", "y.jpg", "z.jpg"]
    args = backend.create_args()
    cli("create", *args)
    for source, annotated in (("a", "x.jpg"), ("b", "y.jpg")):
        folder = tmp_path / source / "annotations"
        folder.mkdir(parents=True)
        (folder / "instances_val.json").write_text(json.dumps(_instances(names, annotated)))
        cli("import", "-p", args[1], "-f", "coco_instances", "-n", source, tmp_path / source)
    figures = json.loads(cli.text("stats", "-p", args[1], "--format", "json"))
    assert figures["images"] == {"val": 3}
    assert figures["images_without_annotations"] == {"val": 1}
    assert cli.text("stats", "-p", args[1]).splitlines()[1].split() == ["val", "3", "1"]
