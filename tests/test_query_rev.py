"""`query --rev REV`: SQL over the views as a revision held them, checked against the input files."""

from __future__ import annotations

import json
from collections import Counter

from helpers import DATA, load_json

INSTANCES = DATA / "datumaro_coco" / "coco_instances"
PER_LABEL = "SELECT label, count(*) AS n FROM annotations_v GROUP BY label ORDER BY label"


def _labels_in_files() -> dict[str, int]:
    counts: Counter[str] = Counter()
    for path in (INSTANCES / "annotations").glob("instances_*.json"):
        data = load_json(path)
        names = {c["id"]: c["name"] for c in data["categories"]}
        counts.update(names[a["category_id"]] for a in data["annotations"])
    return dict(counts)


def _query(cli, project: str, sql: str, *extra: str) -> list[dict]:
    return json.loads(cli.text("query", "-p", project, "--format", "json", *extra, sql))


def test_query_sees_the_views_of_a_revision(cli, backend):
    args = backend.create_args()
    cli("create", *args)
    project = args[1]
    cli("import", "-p", project, "-f", "coco_instances", "-n", "one", INSTANCES)
    cli("commit", "-p", project, "-m", "one")
    expected = _labels_in_files()
    old = sorted(expected)[0]
    cli("labels", "rename", "-p", project, old, "renamed")
    cli("commit", "-p", project, "-m", "renamed")
    cli("remove", "-p", project, "one")

    assert _query(cli, project, PER_LABEL) == []  # the working state: the source is gone
    renamed = {**{k: v for k, v in expected.items() if k != old}, "renamed": expected[old]}
    assert {r["label"]: r["n"] for r in _query(cli, project, PER_LABEL, "--rev", "HEAD")} == renamed
    assert {r["label"]: r["n"] for r in _query(cli, project, PER_LABEL, "--rev", "HEAD~1")} == expected
    images = sum(len(load_json(p)["images"]) for p in (INSTANCES / "annotations").glob("*.json"))
    assert _query(cli, project, "SELECT count(*) AS n FROM items_v", "--rev", "HEAD~1") == [{"n": images}]
    # The statement's own WITH list follows the views'.
    own = f"WITH picked AS (SELECT label FROM annotations_v WHERE label = '{old}') SELECT count(*) AS n FROM picked"
    assert _query(cli, project, own, "--rev", "HEAD~1") == [{"n": expected[old]}]

    refused = cli.text("query", "-p", project, "--rev", "HEAD", "DELETE FROM labels", code=1)
    assert refused.startswith("Error: query: ") and refused.count("\n") == 1
    assert cli.text("query", "-p", project, "--rev", "v9", "SELECT 1", code=1) == (
        "Error: unknown revision 'v9' (expected HEAD, HEAD~N, a tag or a revision id)\n"
    )
