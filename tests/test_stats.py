"""stats: counts and distributions, checked against numpy on the input files themselves."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
from PIL import Image

from helpers import DATA, load_json

PANOPTIC = DATA / "panopticapi_sample" / "coco"


def test_stats_match_the_input_files(cli, backend, tmp_path):
    args = backend.create_args()
    cli("create", *args)
    cli("import", "-p", args[1], "-f", "coco_instances", PANOPTIC)
    plot = tmp_path / "stats.png"
    figures = json.loads(cli.text("stats", "-p", args[1], "--format", "json", "--plot", plot))

    data = load_json(PANOPTIC / "annotations" / "instances_val2017.json")
    annotations = data["annotations"]
    names = {c["id"]: c["name"] for c in data["categories"]}
    assert figures["images"] == {"val2017": len(data["images"])}
    assert figures["annotations"] == {"val2017": {"instances": len(annotations)}}
    assert figures["labels"]["instances"] == dict(Counter(names[a["category_id"]] for a in annotations))
    annotated = {a["image_id"] for a in annotations}
    assert figures["images_without_annotations"] == {"val2017": sum(i["id"] not in annotated for i in data["images"])}
    assert figures["crowd_share"] == sum(a["iscrowd"] for a in annotations) / len(annotations)
    areas = np.array([a["area"] for a in annotations], dtype=float)
    assert figures["area"]["count"] == len(areas)
    assert figures["area"]["quantiles"]["median"] == float(np.median(areas))
    assert figures["area"]["quantiles"]["max"] == areas.max()
    assert figures["area"]["buckets"] == {
        "small": int((areas < 32**2).sum()),
        "medium": int(((areas >= 32**2) & (areas < 96**2)).sum()),
        "large": int((areas >= 96**2).sum()),
    }
    widths = np.array([a["bbox"][2] for a in annotations], dtype=float)
    assert figures["bbox_width"]["quantiles"]["p25"] == float(np.quantile(widths, 0.25))
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size[0] > 0


def test_stats_table_and_rev(cli, backend):
    args = backend.create_args()
    cli("create", *args)
    cli("import", "-p", args[1], "-f", "coco", DATA / "datumaro_coco" / "coco")
    cli("commit", "-p", args[1], "-m", "one")
    cli("labels", "delete", "-p", args[1], "a")
    now = json.loads(cli.text("stats", "-p", args[1], "--format", "json"))
    then = json.loads(cli.text("stats", "-p", args[1], "--format", "json", "--rev", "HEAD"))
    assert "a" not in now["labels"]["instances"] and then["labels"]["instances"]["a"] == 1
    table = cli.text("stats", "-p", args[1]).splitlines()
    assert table[0].split() == ["subset", "images", "without", "annotations"]
    assert table[1].split() == ["train", "1", "0"]
