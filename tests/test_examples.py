"""The format page's examples, as the issue states their results (issue 11, "Done when").

Example 2: `scripts/example_custom_dataset.py OUT` builds a one-item dataset from numpy masks
and exports it as COCO panoptic; the PNG, decoded with Pillow and numpy, must hold the ids
the page gives, and the JSON the segments' labels and crowd flags.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import id_map, load_json

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_example_2_builds_the_page_s_panoptic_dataset(tmp_path):
    out = tmp_path / "OUT"
    subprocess.run([sys.executable, str(SCRIPTS / "example_custom_dataset.py"), str(out)], check=True)
    document = load_json(out / "annotations" / "panoptic_val.json")
    assert document["images"] == [{"id": 40, "width": 5, "height": 1, "file_name": "000000000001.jpg"}]
    [record] = document["annotations"]
    assert record["image_id"] == 40
    assert id_map(out / "annotations" / "panoptic_val" / record["file_name"]).tolist() == [[0, 20, 7, 7, 20]]
    names = {category["id"]: category["name"] for category in document["categories"]}
    segments = {s["id"]: (names[s["category_id"]], s["iscrowd"]) for s in record["segments_info"]}
    assert segments == {7: ("d", 0), 20: ("b", 1)}
    assert [c["name"] for c in document["categories"]] == ["a", "b", "c", "d"]
