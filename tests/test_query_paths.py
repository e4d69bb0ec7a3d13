"""The paths the big queries take: `export --where` fetches exactly the selected annotations
(their JSON copied as stored), SQLite has planner statistics after a bulk write, the schema
check agrees with Alembic without loading it, and `query` starts without the libraries only
imports and exports need.

Oracles: the generated input filtered with plain json; Alembic itself; a fresh interpreter's
`sys.modules`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

import helpers  # noqa: F401  (puts scripts/ on sys.path for gen_coco)
from gen_coco import generate
from helpers import json_difference, load_json
from repo.exporting import export_dataset
from repo.history import commit
from repo.importing import import_dataset
from repo.project import Project
from repo.query import run_query
from repo.store import migrate

SUBSET = "val2017"
TASKS = ["instances", "person_keypoints", "captions"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Edge-case records (ids above 2^31, -0.0, both RLE forms, attributes) among ordinary ones."""
    root = tmp_path_factory.mktemp("where") / "coco"
    generate(root, images=40, seed=9, tasks=TASKS, edge_cases=True)
    return root


def _kept(document: dict, keep) -> list[dict]:
    names = {category["id"]: category["name"] for category in document.get("categories", [])}
    return [annotation for annotation in document["annotations"] if keep(annotation, names.get(annotation.get("category_id")))]


CONDITIONS = {
    "label = 'person'": lambda annotation, label: label == "person",
    "area > 2000 AND iscrowd = 0": lambda annotation, label: "area" in annotation and annotation["area"] > 2000
    and annotation.get("iscrowd") == 0,
    "caption LIKE '%a%'": lambda annotation, label: "a" in annotation.get("caption", ""),
}


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_where_export_writes_exactly_the_selected_annotations(backend, dataset, tmp_path, condition):
    with backend.create() as project:
        import_dataset(project, "coco", dataset)
        export_dataset(project, "coco", tmp_path / "out", where=condition, allow_attributes=True)
    for task in TASKS:
        name = f"{task}_{SUBSET}.json"
        given, written = load_json(dataset / "annotations" / name), load_json(tmp_path / "out" / "annotations" / name)
        expected = _kept(given, CONDITIONS[condition])
        assert json_difference(expected, written["annotations"]) is None, (task, json_difference(expected, written["annotations"]))
        assert written["images"] == given["images"]  # images are written as listed


def test_export_without_where_copies_the_stored_json_exactly(backend, dataset, tmp_path):
    with backend.create() as project:
        import_dataset(project, "coco", dataset)
        export_dataset(project, "coco", tmp_path / "out", allow_attributes=True)
    for task in TASKS:
        name = f"{task}_{SUBSET}.json"
        difference = json_difference(load_json(dataset / "annotations" / name), load_json(tmp_path / "out" / "annotations" / name))
        assert difference is None, (task, difference)


def test_image_id_is_each_annotation_s_image_in_its_file(backend, dataset):
    """annotations_v (SQLite looks image_id up: migration 0007), also at a revision, against
    the input files' own (annotation id, image id) pairs."""
    with backend.create() as project:
        import_dataset(project, "coco", dataset)
        commit(project, "imported")
        sql = "SELECT task, coco_id, image_id FROM annotations_v WHERE task <> 'captions'"
        now = sorted(run_query(project, sql).rows)
        then = sorted(run_query(project, sql, rev="HEAD").rows)
    given = sorted(
        (task, annotation["id"], annotation["image_id"])
        for task in ("instances", "person_keypoints")
        for annotation in load_json(dataset / "annotations" / f"{task}_{SUBSET}.json")["annotations"]
    )
    assert now == then == given


def test_copied_json_beside_a_value_orjson_refuses(backend, tmp_path):
    """Polygons spliced as stored, in an annotation whose extra key holds an integer beyond 64
    bits (which orjson cannot write)."""
    document = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1.5, 5, 1, 5, -0.0]],
                         "area": 8, "bbox": [1, 1, 4, 4], "iscrowd": 0, "x_note": 2**80}],
    }
    source = tmp_path / "coco" / "annotations" / "instances_val.json"
    source.parent.mkdir(parents=True)
    source.write_text(json.dumps(document), encoding="utf-8")
    with backend.create() as project:
        import_dataset(project, "coco", tmp_path / "coco")
        export_dataset(project, "coco", tmp_path / "out")
    assert json_difference(document, load_json(tmp_path / "out" / "annotations" / "instances_val.json")) is None


def test_sqlite_has_planner_statistics_after_import(dataset, tmp_path):
    with Project.create(tmp_path / "project") as project:
        import_dataset(project, "coco", dataset)
        with project.engine.connect() as connection:
            analyzed = {row[0] for row in connection.execute(text("SELECT DISTINCT tbl FROM sqlite_stat1"))}
    assert {"annotations", "items", "file_images", "categories", "labels"} <= analyzed


def test_schema_check_agrees_with_alembic(backend):
    with backend.create() as project, project.engine.connect() as connection:
        scripts = ScriptDirectory.from_config(migrate.alembic_config())
        assert migrate.latest_schema_revision() == scripts.get_current_head()
        assert migrate.schema_revision(connection) == MigrationContext.configure(connection).get_current_revision()
        assert set(migrate._chain()) == {script.revision for script in scripts.walk_revisions()}


def test_query_starts_without_alembic_or_the_image_libraries(tmp_path):
    """`query` runs in a fresh interpreter; afterwards none of these modules were loaded."""
    subprocess.run([sys.executable, "-m", "repo.cli", "create", "-p", str(tmp_path / "p"), "-q"], check=True)
    program = (
        "import json, sys\n"
        "from repo.cli import main\n"
        f"main(['query', '-p', {str(tmp_path / 'p')!r}, 'SELECT label, count(*) FROM annotations_v GROUP BY label'],"
        " standalone_mode=False)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], check=True, capture_output=True, text=True)
    loaded = {name.split(".")[0] for name in json.loads(done.stdout.splitlines()[-1])}
    assert not loaded & {"alembic", "numpy", "pycocotools", "PIL", "cv2", "imagecodecs", "matplotlib"}


def test_the_command_line_offers_the_merge_strategies_merge_knows():
    """The CLI names them without importing repo.merge (numpy comes with it)."""
    from repo.cli import MERGE_STRATEGIES
    from repo.merge import STRATEGIES

    assert MERGE_STRATEGIES == STRATEGIES
