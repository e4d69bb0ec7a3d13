"""VOC, YOLO and Parquet as registered formats: exported from a project (both databases), with
their options after `--`, `--where` and `--rev`.

Data: a held-aside synthetic instances set (scripts/gen_coco.py) and the real panopticapi
sample. Oracles: the COCO JSON read with plain `json` (boxes, crowd flags, labels), the views
answered by `run_query`, XML parsed with ElementTree, DuckDB reading Parquet.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pytest

import helpers  # noqa: F401  (puts scripts/ on sys.path for gen_coco)
from gen_coco import generate
from helpers import DATA, load_json
from repo.errors import OptionError
from repo.exporting import export_dataset
from repo.history import commit
from repo.importing import import_dataset
from repo.labels import delete_label
from repo.query import run_query

SUBSET = "val2017"
SAMPLE = DATA / "panopticapi_sample" / "coco"


@pytest.fixture
def held_aside(tmp_path: Path) -> Path:
    root = tmp_path / "held_aside"
    generate(root, images=30, seed=5, tasks=["instances"])
    return root


def _yolo_lines(out: Path, file_name: str) -> list[list[float]]:
    text = (out / "labels" / SUBSET / f"{Path(file_name).stem}.txt").read_text(encoding="utf-8")
    return [[float(value) for value in line.split()] for line in text.splitlines()]


def test_yolo_holds_the_boxes_and_per_label_counts_of_the_store(backend, held_aside, tmp_path):
    data = load_json(held_aside / "annotations" / f"instances_{SUBSET}.json")
    with backend.create() as project:
        import_dataset(project, "coco", held_aside)
        result = export_dataset(project, "yolo", tmp_path / "yolo")
        counts = dict(
            run_query(project, "SELECT label, count(*) FROM annotations_v WHERE iscrowd = 0 GROUP BY label").rows
        )
    names = [category["name"] for category in data["categories"]]
    class_of = {category["id"]: position for position, category in enumerate(data["categories"])}
    written: Counter[str] = Counter()
    for image in data["images"]:
        lines = _yolo_lines(tmp_path / "yolo", image["file_name"])
        size = np.array([image["width"], image["height"]] * 2, dtype=np.float64)
        expected = []
        for annotation in data["annotations"]:
            if annotation["image_id"] == image["id"] and not annotation["iscrowd"]:
                x, y, w, h = annotation["bbox"]
                corners = np.clip(np.array([x, y, x + w, y + h]) / size, 0, 1)
                expected.append(
                    [
                        class_of[annotation["category_id"]],
                        *(corners[:2] + corners[2:]) / 2,
                        *(corners[2:] - corners[:2]),
                    ]
                )
        assert len(lines) == len(expected)
        if expected:
            np.testing.assert_allclose(np.array(lines), np.array(expected), rtol=0, atol=5.1e-7)
        written.update(names[int(line[0])] for line in lines)
    assert dict(written) == counts
    crowd = sum(annotation["iscrowd"] for annotation in data["annotations"])
    assert crowd > 0 and f"{crowd} crowd annotations skipped (YOLO has no crowd regions)" in result.notes
    yaml_names = (tmp_path / "yolo" / "data.yaml").read_text(encoding="utf-8").split("names:\n")[1].splitlines()
    assert [json.loads(line.split(": ", 1)[1]) for line in yaml_names] == names


def test_parquet_per_label_counts_equal_the_store(cli, backend, held_aside, tmp_path):
    project = backend.create_args()
    cli("create", *project)
    cli("import", *project[:2], "-f", "coco", held_aside)
    out = tmp_path / "parquet"
    cli("export", *project[:2], "-f", "parquet", "-o", out, "--", "--row-group-rows", "7")
    with duckdb.connect() as connection:
        per_label = dict(
            connection.sql(f"SELECT label, count(*) FROM '{out}/annotations.parquet' GROUP BY label").fetchall()
        )
    data = load_json(held_aside / "annotations" / f"instances_{SUBSET}.json")
    names = {category["id"]: category["name"] for category in data["categories"]}
    assert per_label == dict(Counter(names[annotation["category_id"]] for annotation in data["annotations"]))


def test_panoptic_segments_are_not_doubled_by_the_instances_of_the_same_images(backend, tmp_path):
    panoptic = load_json(SAMPLE / "annotations" / "panoptic_val2017.json")
    segments = [segment for record in panoptic["annotations"] for segment in record["segments_info"]]
    with backend.create() as project:
        import_dataset(project, "coco", SAMPLE)  # instances and panoptic of the same two images
        tasks = dict(run_query(project, "SELECT task, count(*) FROM annotations_v GROUP BY task").rows)
        assert tasks["instances"] > 0 and tasks["panoptic"] == len(segments)
        voc = export_dataset(project, "voc", tmp_path / "voc")
        yolo = export_dataset(project, "yolo", tmp_path / "yolo")
    assert (voc.images, voc.annotations) == (2, len(segments))
    assert yolo.annotations == sum(1 for segment in segments if not segment["iscrowd"])


def test_where_and_rev_choose_what_voc_holds(backend, tmp_path):
    with backend.create() as project:
        import_dataset(project, "coco_panoptic", SAMPLE / "annotations" / "panoptic_val2017.json")
        commit(project, "panoptic sample")
        [(persons,)] = run_query(project, "SELECT count(*) FROM annotations_v WHERE label = 'person'").rows
        delete_label(project, "person")
        export_dataset(project, "voc", tmp_path / "persons", rev="HEAD", where="label = 'person'")
        now = export_dataset(project, "voc", tmp_path / "now")
    objects = [
        obj.findtext("name")
        for xml in sorted((tmp_path / "persons" / "Annotations").glob("*.xml"))
        for obj in ET.parse(xml).getroot().iter("object")
    ]
    assert persons > 0 and objects == ["person"] * persons
    assert now.annotations == 50 - persons


def test_formats_and_their_options_come_from_the_registry(cli, backend, tmp_path):
    listed = cli.text("formats")
    for name in ("voc", "yolo", "parquet"):
        assert name in listed
    project = backend.create_args()
    cli("create", *project)
    cli("import", *project[:2], "-f", "coco_panoptic", SAMPLE / "annotations" / "panoptic_val2017.json")
    said = cli("export", *project[:2], "-f", "yolo", "-o", tmp_path / "yolo", "--", "--segments")
    assert "2 images, 47 annotations" in said.stdout  # panoptic segments are masks: traced
    assert (
        "note: 3 crowd annotations skipped" in said.stderr and "note: 47 masks written as the polygons" in said.stderr
    )
    refused = cli.text("export", *project[:2], "-f", "voc", "-o", tmp_path / "voc", "--", "--segments", code=2)
    assert "--segments is not an option of format 'voc' (its options: --save-images)" in refused
    refused = cli.text(
        "export", *project[:2], "-f", "parquet", "-o", tmp_path / "pq", "--", "--row-group-rows", "0", code=2
    )
    assert (
        "Error: option --row-group-rows (row_group_rows): '0' is not valid; expected a whole number of at least 1"
        in refused
    )
    assert not (tmp_path / "pq").exists()


def test_an_integer_option_takes_numbers_only():
    from repo.formats.registry import get_format

    parquet = get_format("parquet")
    assert parquet.export_settings({"row_group_rows": "12"}) == {"row_group_rows": 12}
    for bad in (0, "x", 1.5, True):
        with pytest.raises(OptionError):
            parquet.export_settings({"row_group_rows": bad})


def test_convert_prints_what_the_format_left_out(cli, tmp_path):
    said = cli("convert", "-if", "coco_panoptic", "-i", SAMPLE / "annotations" / "panoptic_val2017.json",
               "-f", "yolo", "-o", tmp_path / "yolo")
    assert "converted 2 images, 47 annotations" in said.stdout
    assert "note: 3 crowd annotations skipped (YOLO has no crowd regions)" in said.stderr
