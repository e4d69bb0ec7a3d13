"""Several sources: union export, id collisions and --reindex, label changes, merge strategies."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pycocotools.coco import COCO

from helpers import assert_same_file, database_contents, load_json
from repo.project import Project

SOURCE_A: dict[str, Any] = {
    "info": {"description": "vendor A"},
    "licenses": [{"id": 1, "name": "CC-BY"}],
    "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}],
    "images": [
        {"id": 1, "file_name": "a.jpg", "width": 100, "height": 80},
        {"id": 2, "file_name": "shared.jpg", "width": 50, "height": 40},
    ],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 30], "area": 600, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [40, 5, 30, 20], "area": 600, "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0},
    ],
}
SOURCE_B: dict[str, Any] = {
    "info": {"description": "vendor B"},
    "licenses": [{"id": 1, "name": "CC-BY"}, {"id": 2, "name": "CC0"}],
    "categories": [{"id": 5, "name": "person"}, {"id": 1, "name": "dog"}],
    "images": [
        {"id": 1, "file_name": "b.jpg", "width": 100, "height": 80},
        {"id": 9, "file_name": "shared.jpg", "width": 50, "height": 40},
    ],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "area": 100, "iscrowd": 0},
        {"id": 2, "image_id": 9, "category_id": 5, "bbox": [20, 20, 5, 5], "area": 25, "iscrowd": 0},
        {"id": 3, "image_id": 1, "category_id": 5, "bbox": [60, 30, 10, 40], "area": 400, "iscrowd": 0},
    ],
}


def _write(folder: Path, document: dict[str, Any], name: str = "instances_val.json") -> Path:
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    (folder / "annotations" / name).write_text(json.dumps(document))
    return folder


def _labelled(document: dict[str, Any]) -> Counter[tuple[str, str, tuple[float, ...]]]:
    """Annotations as (file name, label, bbox): what a union must keep, whatever the ids."""
    names = {c["id"]: c["name"] for c in document["categories"]}
    files = {i["id"]: i["file_name"] for i in document["images"]}
    return Counter((files[a["image_id"]], names[a["category_id"]], tuple(a["bbox"])) for a in document["annotations"])


@pytest.fixture
def two_sources(cli, backend, tmp_path) -> str:
    args = backend.create_args()
    cli("create", *args)
    cli("import", "-p", args[1], "-f", "coco", "-n", "a", str(_write(tmp_path / "a", SOURCE_A)))
    cli("import", "-p", args[1], "-f", "coco", "-n", "b", str(_write(tmp_path / "b", SOURCE_B)))
    return args[1]


def test_colliding_sources_need_reindex(cli, two_sources, tmp_path):
    """The issue's scenario, step by step."""
    message = cli.text("export", "-p", two_sources, "-f", "coco", "-o", str(tmp_path / "plain"), code=1)
    assert message == (
        "Error: instances_val.json: category id 1 is used by label 'person' (source a) and by label 'dog' "
        "(source b); use --reindex to assign new ids\n"
    )
    out = tmp_path / "reindexed"
    cli("export", "-p", two_sources, "-f", "coco", "-o", str(out), "--", "--reindex",
        "--reindex-map", str(tmp_path / "map.json"))
    exported = out / "annotations" / "instances_val.json"
    merged = load_json(exported)
    assert _labelled(merged) == _labelled(SOURCE_A) + _labelled(SOURCE_B)
    assert sorted(c["name"] for c in merged["categories"]) == ["car", "dog", "person"]
    assert sorted(i["file_name"] for i in merged["images"]) == ["a.jpg", "b.jpg", "shared.jpg"]
    assert [a["id"] for a in merged["annotations"]] == list(range(1, 7))
    assert [i["id"] for i in merged["images"]] == [1, 2, 3]
    assert merged["info"] == SOURCE_A["info"]
    assert merged["licenses"] == [{"id": 1, "name": "CC-BY"}, {"id": 2, "name": "CC0"}]
    coco = COCO(str(exported))  # pycocotools loads it, and sees the same union
    assert len(coco.getAnnIds()) == 6 and len(coco.getImgIds()) == 3 and len(coco.getCatIds()) == 3
    mapping = json.loads((tmp_path / "map.json").read_text())["instances_val.json"]
    assert {"source": "b", "old": 9, "new": 3} not in mapping["images"]  # shared.jpg kept a's new id
    assert {"source": "b", "old": 1, "new": 3} in mapping["images"]


def test_query_counts_labels_and_refuses_writes(cli, two_sources, tmp_path):
    rows = json.loads(cli.text("query", "-p", two_sources, "--format", "json",
                          "SELECT label, count(*) AS n FROM annotations_v GROUP BY label ORDER BY label"))
    expected = Counter(label for _, label, _ in (_labelled(SOURCE_A) + _labelled(SOURCE_B)).elements())
    assert {row["label"]: row["n"] for row in rows} == dict(expected)
    project = Project.open(Path(two_sources))
    before = database_contents(project)
    message = cli.text("query", "-p", two_sources, "DELETE FROM annotations", code=1)
    assert message.startswith("Error: query: refused: queries are read-only (")
    for statement in ("DROP VIEW annotations_v", "SELECT 1; DELETE FROM items", "UPDATE labels SET name = 'x'"):
        assert cli.text("query", "-p", two_sources, statement, code=1).startswith("Error: query: ")
    assert database_contents(project) == before


def test_where_exports_exactly_the_matching_annotations(cli, two_sources, tmp_path):
    out = tmp_path / "persons"
    cli("export", "-p", two_sources, "-f", "coco", "-o", str(out), "--where", "label = 'person'",
        "--", "--reindex")
    exported = load_json(out / "annotations" / "instances_val.json")
    everything = _labelled(SOURCE_A) + _labelled(SOURCE_B)
    assert _labelled(exported) == Counter({k: n for k, n in everything.items() if k[1] == "person"})
    assert len(exported["images"]) == 3  # images and categories are written as listed
    big = tmp_path / "big"
    cli("export", "-p", two_sources, "-f", "coco", "-o", str(big), "--where",
        "area > 100 AND source = 'a'", "--", "--reindex")
    assert sorted(a["area"] for a in load_json(big / "annotations" / "instances_val.json")["annotations"]) == [600, 600]
    message = cli.text("export", "-p", two_sources, "-f", "coco", "-o", str(tmp_path / "bad"), "--where",
                  "no_such_column = 1", code=1)
    assert message.startswith("Error: --where: ") and "no_such_column" in message


def test_where_combines_with_rev(cli, two_sources, tmp_path):
    cli("commit", "-p", two_sources, "-m", "both")
    cli("labels", "delete", "-p", two_sources, "person")
    out = tmp_path / "then"
    cli("export", "-p", two_sources, "-f", "coco", "-o", str(out), "--rev", "HEAD",
        "--where", "label = 'person'", "--", "--reindex")
    assert sum(_labelled(load_json(out / "annotations" / "instances_val.json")).values()) == 4
    now = tmp_path / "now"
    cli("export", "-p", two_sources, "-f", "coco", "-o", str(now), "--where", "label = 'person'", "--", "--reindex")
    assert load_json(now / "annotations" / "instances_val.json")["annotations"] == []


def test_shared_image_with_other_size_is_an_error(cli, backend, tmp_path):
    args = backend.create_args()
    cli("create", *args)
    other = copy.deepcopy(SOURCE_B)
    other["images"][1]["width"] = 51
    cli("import", "-p", args[1], "-f", "coco", "-n", "a", str(_write(tmp_path / "a", SOURCE_A)))
    cli("import", "-p", args[1], "-f", "coco", "-n", "b", str(_write(tmp_path / "b", other)))
    message = cli.text("export", "-p", args[1], "-f", "coco", "-o", str(tmp_path / "out"), "--", "--reindex", code=1)
    assert message == (
        "Error: instances_val.json: image 'shared.jpg' is 50x40 in source a but 51x40 in source b (width x height)\n"
    )


def test_collisions_of_image_and_annotation_ids(cli, backend, tmp_path):
    args = backend.create_args()
    cli("create", *args)
    same_labels = copy.deepcopy(SOURCE_B)
    same_labels["categories"] = [{"id": 5, "name": "person"}, {"id": 3, "name": "dog"}]
    for annotation in same_labels["annotations"]:
        annotation["category_id"] = {1: 3, 5: 5}[annotation["category_id"]]
    cli("import", "-p", args[1], "-f", "coco", "-n", "a", str(_write(tmp_path / "a", SOURCE_A)))
    cli("import", "-p", args[1], "-f", "coco", "-n", "b", str(_write(tmp_path / "b", same_labels)))
    assert cli.text("export", "-p", args[1], "-f", "coco", "-o", str(tmp_path / "o1"), code=1) == (
        "Error: instances_val.json: image id 1 is used by 'a.jpg' (source a) and by 'b.jpg' (source b); "
        "use --reindex to assign new ids\n"
    )
    same_labels["images"][0]["id"] = 7
    for annotation in same_labels["annotations"]:
        annotation["image_id"] = {1: 7, 9: 9}[annotation["image_id"]]
    cli("update", "-p", args[1], "b", str(_write(tmp_path / "b2", same_labels)))
    assert cli.text("export", "-p", args[1], "-f", "coco", "-o", str(tmp_path / "o2"), code=1) == (
        "Error: instances_val.json: annotation id 1 is used by source a and by source b; "
        "use --reindex to assign new ids\n"
    )
    for number, annotation in enumerate(same_labels["annotations"]):
        annotation["id"] = 100 + number
    cli("update", "-p", args[1], "b", str(_write(tmp_path / "b3", same_labels)))
    out = tmp_path / "o3"
    cli("export", "-p", args[1], "-f", "coco", "-o", str(out))
    merged = load_json(out / "annotations" / "instances_val.json")
    assert [c["id"] for c in merged["categories"]] == [1, 2, 3]  # person keeps a's id 1; dog keeps 3
    assert [a["category_id"] for a in merged["annotations"]] == [1, 2, 1, 3, 1, 1]
    assert [i["id"] for i in merged["images"]] == [1, 2, 7]  # shared.jpg keeps a's id 2


def test_label_commands(cli, two_sources, tmp_path):
    cli("commit", "-p", two_sources, "-m", "start")
    assert cli.text("labels", "rename", "-p", two_sources, "car", "vehicle") == "renamed label 'car' to 'vehicle'\n"
    assert cli.text("labels", "rename", "-p", two_sources, "dog", "person", code=1) == (
        "Error: a label named 'person' already exists; use `dsrepo labels merge dog --into person`\n"
    )
    cli("labels", "merge", "-p", two_sources, "dog", "--into", "person")
    out = tmp_path / "out"
    cli("export", "-p", two_sources, "-f", "coco", "-o", str(out), "--", "--reindex")
    merged = load_json(out / "annotations" / "instances_val.json")
    assert sorted(c["name"] for c in merged["categories"]) == ["person", "vehicle"]
    labels = Counter(label for _, label, _ in _labelled(merged).elements())
    assert labels == {"person": 5, "vehicle": 1}
    deleted = cli.text("labels", "delete", "-p", two_sources, "person")
    assert deleted == "deleted label 'person' and 5 annotations\n"
    assert cli.text("labels", "delete", "-p", two_sources, "person", code=1) == "Error: no label named 'person'\n"
    cli("commit", "-p", two_sources, "-m", "labels")
    cli("checkout", "-p", two_sources, "HEAD~1")  # every label change is revertable
    back = tmp_path / "back"
    cli("export", "-p", two_sources, "-f", "coco", "-o", str(back), "--", "--reindex")
    assert _labelled(load_json(back / "annotations" / "instances_val.json")) == _labelled(SOURCE_A) + _labelled(SOURCE_B)


def test_merge_within_one_file_moves_annotations(cli, backend, tmp_path):
    document = copy.deepcopy(SOURCE_A)
    document["categories"].append({"id": 3, "name": "people"})
    document["annotations"].append({"id": 4, "image_id": 2, "category_id": 3, "bbox": [9, 9, 9, 9], "iscrowd": 0})
    args = backend.create_args()
    cli("create", *args)
    cli("import", "-p", args[1], "-f", "coco", "-n", "a", str(_write(tmp_path / "a", document)))
    cli("labels", "merge", "-p", args[1], "people", "--into", "person")
    out = tmp_path / "out"
    cli("export", "-p", args[1], "-f", "coco", "-o", str(out))
    merged = load_json(out / "annotations" / "instances_val.json")
    assert merged["categories"] == SOURCE_A["categories"]
    assert merged["annotations"][-1] == {**document["annotations"][-1], "category_id": 1}


def test_label_map_at_import(cli, backend, tmp_path):
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"car": "vehicle", "person": None}))
    args = backend.create_args()
    cli("create", *args)
    cli("import", "-p", args[1], "-f", "coco", "-n", "a", "--label-map", str(mapping),
        str(_write(tmp_path / "a", SOURCE_A)))
    out = tmp_path / "out"
    cli("export", "-p", args[1], "-f", "coco", "-o", str(out))
    exported = load_json(out / "annotations" / "instances_val.json")
    assert exported["categories"] == [{"id": 2, "name": "vehicle"}]
    assert exported["annotations"] == [{**SOURCE_A["annotations"][1]}]
    cli("commit", "-p", args[1], "-m", "mapped")
    assert cli.text("update", "-p", args[1], "a", str(tmp_path / "a")).endswith(
        "instances_val.json: unchanged, skipped\nsource 'a' is unchanged\n"
    )


# -- merge ---------------------------------------------------------------------------------

def test_merge_union_replaces_the_inputs(cli, two_sources, tmp_path):
    assert cli.text("merge", "-p", two_sources, "-n", "ab", "a", "b", code=1).startswith(
        "Error: instances_val.json: category id 1 is used by label 'person' (source a)"
    )
    out = cli.text("merge", "-p", two_sources, "-n", "ab", "a", "b", "--reindex")
    assert out == "merged a, b into 'ab': 1 files, 3 images, 6 annotations\n"
    info = cli.text("info", "-p", two_sources)
    assert "  ab (format coco" in info and "  a (format" not in info
    exported = tmp_path / "out"
    cli("export", "-p", two_sources, "-f", "coco", "-o", str(exported))
    merged = load_json(exported / "annotations" / "instances_val.json")
    assert _labelled(merged) == _labelled(SOURCE_A) + _labelled(SOURCE_B)
    cli("commit", "-p", two_sources, "-m", "merged")
    older = tmp_path / "older"
    cli("export", "-p", two_sources, "-f", "coco", "-o", str(older), "--rev", "HEAD",
        "--where", "source = 'ab'")
    assert load_json(older / "annotations" / "instances_val.json")["annotations"] == merged["annotations"]


def test_merge_exact(cli, backend, tmp_path):
    args = backend.create_args()
    cli("create", *args)
    cli("import", "-p", args[1], "-f", "coco", "-n", "a", str(_write(tmp_path / "a", SOURCE_A)))
    cli("import", "-p", args[1], "-f", "coco", "-n", "copy", str(_write(tmp_path / "copy", SOURCE_A)))
    cli("merge", "-p", args[1], "-n", "one", "--strategy", "exact", "a", "copy")
    out = tmp_path / "out"
    cli("export", "-p", args[1], "-f", "coco", "-o", str(out))
    assert_same_file(tmp_path / "a" / "annotations" / "instances_val.json", out / "annotations" / "instances_val.json")
    different = copy.deepcopy(SOURCE_A)
    different["annotations"][2]["bbox"] = [1, 2, 3, 5]
    cli("import", "-p", args[1], "-f", "coco", "-n", "other", str(_write(tmp_path / "other", different)))
    project = Project.open(Path(args[1]))
    before = database_contents(project)
    assert cli.text("merge", "-p", args[1], "-n", "two", "--strategy", "exact", "one", "other", code=1) == (
        "Error: exact merge: instances_val.json: image 'shared.jpg' has different annotations in sources one "
        "and other; use --strategy union or intersect\n"
    )
    assert database_contents(project) == before


def _noisy(document: dict[str, Any], shift: float, drop: int | None = None, relabel: int | None = None) -> dict[str, Any]:
    copy_ = copy.deepcopy(document)
    for annotation in copy_["annotations"]:
        x, y, w, h = annotation["bbox"]
        annotation["bbox"] = [x + shift, y + shift, w, h]
    if relabel is not None:
        copy_["annotations"][relabel]["category_id"] = 2
    if drop is not None:
        del copy_["annotations"][drop]
    return copy_


def test_merge_intersect_votes_and_reports(cli, backend, tmp_path):
    args = backend.create_args()
    cli("create", *args)
    cli("import", "-p", args[1], "-f", "coco", "-n", "one", str(_write(tmp_path / "1", SOURCE_A)))
    cli("import", "-p", args[1], "-f", "coco", "-n", "two",
        str(_write(tmp_path / "2", _noisy(SOURCE_A, 0.5, relabel=0))))
    cli("import", "-p", args[1], "-f", "coco", "-n", "three",
        str(_write(tmp_path / "3", _noisy(SOURCE_A, 1.0, drop=2))))
    report = tmp_path / "report.json"
    result = cli("merge", "-p", args[1], "-n", "agreed", "--strategy", "intersect", "--quorum", "3",
                 "--iou", "0.5", "--report", report, "one", "two", "three")
    # 2 objects kept from 3 sources each (4 duplicates merged), 1 object in only 2 sources (dropped)
    assert result.stderr == f"2 conflicts, 4 annotations merged as duplicates, 2 dropped; report: {report}\n"
    out = tmp_path / "out"
    cli("export", "-p", args[1], "-f", "coco", "-o", str(out))
    merged = load_json(out / "annotations" / "instances_val.json")
    kept = _labelled(merged)
    # annotation 3 (shared.jpg) is missing in source three: below the quorum of 3, dropped;
    # annotation 1 was relabelled by source two only: the majority keeps "person", with the
    # box of a voter for it (one and three are equally close to the rest: the first wins);
    # the car's box is the middle one, source two's.
    assert kept == Counter({("a.jpg", "person", (10, 10, 20, 30)): 1, ("a.jpg", "car", (40.5, 5.5, 30, 20)): 1})
    document = json.loads(report.read_text())
    assert (document["annotations_merged_as_duplicates"], document["annotations_dropped"]) == (4, 2)
    conflicts = document["conflicts"]
    assert sorted(c["kind"] for c in conflicts) == ["label_vote", "no_match"]
    missing = next(c for c in conflicts if c["kind"] == "no_match")
    assert missing["missing"] == ["three"] and missing["image"] == "shared.jpg"
    assert [(a["source"], a["label"]) for a in missing["annotations"]] == [("one", "person"), ("two", "person")]
    vote = next(c for c in conflicts if c["kind"] == "label_vote")  # source two called the person a car
    assert vote["votes"] == [{"category_id": 1, "label": "person", "votes": 2}, {"category_id": 2, "label": "car", "votes": 1}]
    assert sorted((a["source"], a["label"]) for a in vote["annotations"]) == [
        ("one", "person"), ("three", "person"), ("two", "car")
    ]


def test_merge_errors(cli, two_sources):
    assert cli.text("merge", "-p", two_sources, "-n", "x", "a", code=1) == (
        "Error: merge needs at least two different sources\n"
    )
    assert cli.text("merge", "-p", two_sources, "-n", "x", "a", "ghost", code=1) == (
        "Error: no source named 'ghost' (sources: a, b)\n"
    )
