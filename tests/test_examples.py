"""The format page's examples, as the issue states their results (issue 11, "Done when").

Example 1: real COCO panoptic ground truth (the panopticapi sample) is imported, summarised
and exported as Pascal VOC with the command line; the oracles are the panoptic PNG decoded with
Pillow and numpy (each pixel's label), the JSON's category order, the original image files, and
Datumaro 1.13.12 reading the folder.

Example 2: `scripts/example_custom_dataset.py OUT` builds a one-item dataset from numpy masks
and exports it as COCO panoptic; the PNG, decoded with Pillow and numpy, must hold the ids
the page gives, the JSON the segments' labels and crowd flags, and Datumaro must read back the
masks the example gave.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
from datumaro.components.annotation import AnnotationType
from datumaro.components.dataset import Dataset
from PIL import Image

from helpers import DATA, id_map, load_json

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
    # Datumaro reads back the page's dataset: the item, its id 40, both masks with their labels
    dataset = Dataset.import_from(str(out), "coco_panoptic")
    [item] = list(dataset)
    labels = dataset.categories()[AnnotationType.label]
    assert (item.id, item.subset, item.attributes["id"], item.media.data.shape) == (
        "000000000001",
        "val",
        40,
        (1, 5, 3),
    )
    read = {
        a.id: (labels[a.label].name, a.attributes["is_crowd"], a.image.astype(int).tolist()) for a in item.annotations
    }
    assert read == {7: ("d", False, [[0, 0, 1, 1, 0]]), 20: ("b", True, [[0, 1, 0, 0, 1]])}


# -- Example 1: COCO panoptic ground truth to Pascal VOC, through the command line ------------

SAMPLE = DATA / "panopticapi_sample" / "coco"
PANOPTIC = load_json(SAMPLE / "annotations" / "panoptic_val2017.json")


def test_example_1_converts_panoptic_ground_truth_to_voc(backend, cli, tmp_path):
    project = backend.create_args()
    cli("create", *project)
    cli("import", *project[:2], "-f", "coco_panoptic", SAMPLE / "annotations" / "panoptic_val2017.json")
    stats = cli.text("stats", *project[:2])
    assert "person" in stats and "panoptic" in stats
    out = tmp_path / "voc"
    said = cli.text("export", *project[:2], "-f", "voc", "-o", out, "--", "--save-images")
    assert "2 images, 50 annotations" in said and "saved 2 images" in said

    # labelmap.txt: background, then the categories in the file's order
    names = [line.split(":")[0] for line in (out / "labelmap.txt").read_text(encoding="utf-8").splitlines()[1:]]
    assert names == ["background"] + [category["name"] for category in PANOPTIC["categories"]]
    category_names = {category["id"]: category["name"] for category in PANOPTIC["categories"]}
    for record in PANOPTIC["annotations"]:
        stem = Path(record["file_name"]).stem
        # every pixel's palette index is the label the panoptic PNG gives it (Pillow + numpy)
        ids = id_map(SAMPLE / "annotations" / "panoptic_val2017" / record["file_name"])
        expected = np.zeros(ids.shape, dtype=np.uint8)
        for segment in record["segments_info"]:
            expected[ids == segment["id"]] = names.index(category_names[segment["category_id"]])
        with Image.open(out / "SegmentationClass" / f"{stem}.png") as png:
            assert png.mode == "P"
            assert np.array_equal(np.asarray(png), expected)
    for image in PANOPTIC["images"]:
        assert (out / "JPEGImages" / image["file_name"]).read_bytes() == (
            SAMPLE / "images" / "val2017" / image["file_name"]
        ).read_bytes()

    dataset = Dataset.import_from(str(out), "voc")  # Datumaro reads it, one item per image
    assert sorted(item.id for item in dataset) == sorted(Path(image["file_name"]).stem for image in PANOPTIC["images"])
    assert [label.name for label in dataset.categories()[AnnotationType.label]] == names


# -- the README's blocks of both examples run as written --------------------------------------

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(title: str, language: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"```{language}\n", text.index(title)) + len(language) + 4
    return text[start : text.index("```", start)]


def test_the_readme_examples_run_as_written(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "coco").symlink_to(SAMPLE, target_is_directory=True)
    for line in _block("**Example 1**", "sh").splitlines():
        command = shlex.split(line)
        assert command[0] == "dsrepo"
        cli(*command[1:])
    assert len(list((tmp_path / "voc" / "JPEGImages").iterdir())) == len(PANOPTIC["images"])
    exec(compile(_block("**Example 2**", "python"), "README.md", "exec"), {})
    [png] = (tmp_path / "out" / "annotations" / "panoptic_val").iterdir()
    assert id_map(png).tolist() == [[0, 20, 7, 7, 20]]
