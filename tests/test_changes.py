"""`diff --details`: items, annotations and label renames named one by one, paired by lineage;
`diff` without a revision compares HEAD with the working state. Expected values come from the
COCO documents the test writes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from repo.changes import diff_details
from repo.project import Project

V1: dict[str, Any] = {
    "images": [
        {"id": 1, "file_name": "x.jpg", "width": 40, "height": 30},
        {"id": 2, "file_name": "y.jpg", "width": 40, "height": 30},
    ],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1.0, 2.0, 3.0, 4.0], "area": 12.0, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [5.0, 5.0, 5.0, 5.0], "area": 25.0, "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0.0, 0.0, 2.0, 2.0], "area": 4.0, "iscrowd": 0},
    ],
    "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
}


def _v2() -> dict[str, Any]:
    """x.jpg kept with annotation 1 wider and 2 gone; y.jpg (and annotation 3) gone; z.jpg new with 4."""
    v2 = copy.deepcopy(V1)
    v2["images"] = [V1["images"][0], {"id": 3, "file_name": "z.jpg", "width": 40, "height": 30}]
    v2["annotations"] = [
        dict(V1["annotations"][0], bbox=[1.0, 2.0, 6.0, 4.0], area=24.0),
        {"id": 4, "image_id": 3, "category_id": 1, "bbox": [1.0, 1.0, 1.0, 1.0], "area": 1.0, "iscrowd": 0},
    ]
    return v2


def _write(folder: Path, document: dict[str, Any]) -> Path:
    (folder / "annotations").mkdir(parents=True)
    (folder / "annotations" / "instances_val.json").write_text(json.dumps(document))
    return folder


def _project(cli, backend, tmp_path) -> str:
    args = backend.create_args()
    cli("create", *args)
    cli("import", "-p", args[1], "-f", "coco_instances", "-n", "a", _write(tmp_path / "v1", V1))
    cli("commit", "-p", args[1], "-m", "v1")
    return args[1]


def test_details_name_what_an_update_and_a_rename_changed(cli, backend, tmp_path):
    project = _project(cli, backend, tmp_path)
    cli("update", "-p", project, "a", _write(tmp_path / "v2", _v2()))
    cli("labels", "rename", "-p", project, "cat", "feline")
    found = json.loads(cli.text("diff", "-p", project, "--details", "--format", "json"))  # HEAD -> working state
    assert (found["before"], found["after"]) == ("HEAD", None)
    assert found["label_renames"] == [{"old": "cat", "new": "feline"}]
    assert [(i["change"], i["file_name"]) for i in found["items"]] == [("removed", "y.jpg"), ("added", "z.jpg")]
    one, two, three = V1["annotations"]
    changed = _v2()["annotations"][0]
    assert [(a["change"], a["file_name"], a["id"], a["label"]) for a in found["annotations"]] == [
        ("changed", "x.jpg", 1, "feline"), ("removed", "x.jpg", 2, "dog"), ("removed", "y.jpg", 3, "cat"),
        ("added", "z.jpg", 4, "feline"),
    ]
    first = found["annotations"][0]
    assert first["fields"] == ["bbox", "area"]  # not "label": the rename is reported once, above
    assert first["before"] == {"bbox": one["bbox"], "area": one["area"]}
    assert first["after"] == {"bbox": changed["bbox"], "area": changed["area"]}

    cli("commit", "-p", project, "-m", "v2")
    assert cli.text("diff", "-p", project, "--details") == "no differences\n"
    table = cli.text("diff", "-p", project, "HEAD~1", "HEAD", "--details")
    assert table.splitlines()[0] == "label renamed: cat -> feline"
    assert any(line.split()[:6] == ["changed", "a", "val/x.jpg", "instances", "1", "feline"]
               and line.endswith("bbox [1.0, 2.0, 3.0, 4.0] -> [1.0, 2.0, 6.0, 4.0]; area 12.0 -> 24.0")
               for line in table.splitlines())
    assert any(line.split() == ["removed", "a", "val/y.jpg", "instances", "3", "cat"] for line in table.splitlines())


def test_a_merged_label_changes_the_annotations_that_carried_it(cli, backend, tmp_path):
    project = _project(cli, backend, tmp_path)
    cli("labels", "merge", "-p", project, "dog", "--into", "cat")
    found = diff_details(Project.open(Path(project)))
    assert found.label_renames == [] and found.items == []
    [moved] = found.annotations  # annotation 2, the only dog
    assert (moved.change, moved.id, moved.label, moved.fields) == ("changed", 2, "cat", ("label",))
    assert (moved.before, moved.after) == ({"label": "dog"}, {"label": "cat"})


def test_diff_without_a_revision_counts_uncommitted_changes(cli, backend, tmp_path):
    project = _project(cli, backend, tmp_path)
    assert cli.text("diff", "-p", project) == "no differences\n"
    cli("update", "-p", project, "a", _write(tmp_path / "v2", _v2()))
    counts = {(row["kind"]): (row["added"], row["removed"], row["changed"])
              for row in json.loads(cli.text("diff", "-p", project, "--format", "json"))}
    assert counts["items"] == (1, 1, 0) and counts["annotations"] == (1, 2, 1)
    assert json.loads(cli.text("diff", "-p", project, "--format", "json")) == json.loads(
        cli.text("diff", "-p", project, "HEAD", "--format", "json")
    )
