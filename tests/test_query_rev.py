"""`query --rev REV`: SQL over the views as a revision held them, on both databases.

Oracle: the panoptic sample's JSON read with plain `json` (segments per label, images)."""

from __future__ import annotations

import json
from collections import Counter

from helpers import DATA, load_json
from repo.history import commit, tag
from repo.importing import import_dataset
from repo.labels import delete_label

SAMPLE = DATA / "panopticapi_sample" / "coco"
PANOPTIC = load_json(SAMPLE / "annotations" / "panoptic_val2017.json")
PER_LABEL = "SELECT label, count(*) AS n FROM annotations_v GROUP BY label"


def _json(cli, project, sql, *rev):
    return json.loads(cli.text("query", "-p", project.directory, "--format", "json", *rev, sql))


def test_the_views_answer_as_the_revision_held_them(backend, cli):
    names = {category["id"]: category["name"] for category in PANOPTIC["categories"]}
    expected = Counter(names[s["category_id"]] for record in PANOPTIC["annotations"] for s in record["segments_info"])
    with backend.create() as project:
        import_dataset(project, "coco_panoptic", SAMPLE / "annotations" / "panoptic_val2017.json", name="sample")
        commit(project, "sample")
        tag(project, "v1")
        delete_label(project, "person")
        commit(project, "no persons")
        import_dataset(project, "coco_panoptic", SAMPLE / "annotations" / "panoptic_val2017.json", name="again")
        at_v1 = {row["label"]: row["n"] for row in _json(cli, project, PER_LABEL, "--rev", "v1")}
        assert at_v1 == dict(expected)
        now = {row["label"]: row["n"] for row in _json(cli, project, PER_LABEL)}
        assert now["person"] == expected["person"] and now["horse"] == 2 * expected["horse"]  # "again" has persons
        head = {row["label"]: row["n"] for row in _json(cli, project, PER_LABEL, "--rev", "HEAD")}
        assert "person" not in head and head["horse"] == expected["horse"]
        items = _json(cli, project, "SELECT source, count(*) AS n FROM items_v GROUP BY source", "--rev", "v1")
        assert items == [{"source": "sample", "n": len(PANOPTIC["images"])}]
        # a statement with its own WITH clause, and one joining both views
        own = _json(
            cli,
            project,
            "WITH p AS (SELECT * FROM annotations_v WHERE label = 'person') SELECT count(*) AS n FROM p",
            "--rev",
            "HEAD~1",
        )
        assert own == [{"n": expected["person"]}]
        joined = _json(
            cli,
            project,
            "SELECT count(*) AS n FROM annotations_v a JOIN items_v i USING (source, subset, file_name)",
            "--rev",
            "v1",
        )
        assert joined == [{"n": sum(expected.values())}]


def test_a_bad_revision_or_a_write_is_refused_in_one_line(backend, cli):
    with backend.create() as project:
        import_dataset(project, "coco_panoptic", SAMPLE / "annotations" / "panoptic_val2017.json")
        commit(project, "sample")
        missing = cli.text("query", "-p", project.directory, "--rev", "nope", "SELECT 1", code=1)
        assert len(missing.strip().splitlines()) == 1 and "nope" in missing
        refused = cli.text("query", "-p", project.directory, "--rev", "HEAD", "DELETE FROM annotations", code=1)
        assert len(refused.strip().splitlines()) == 1
        assert _json(cli, project, "SELECT count(*) AS n FROM annotations_v", "--rev", "HEAD") == [{"n": 50}]
