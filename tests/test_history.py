"""Versions: commit, log, tag, references, export --rev, checkout, diff, remove, status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import DATA, assert_same_file, database_contents
from repo.project import Project

FIRST = DATA / "datumaro_coco" / "coco_instances"
SECOND = DATA / "datumaro_coco" / "coco_captions"


@pytest.fixture
def project(cli, backend) -> str:
    args = backend.create_args()
    cli("create", *args)
    return args[1]


def _same_folder(source: Path, exported: Path) -> None:
    names = sorted(p.name for p in (source / "annotations").glob("*.json"))
    assert sorted(p.name for p in (exported / "annotations").glob("*.json")) == names
    for name in names:
        assert_same_file(source / "annotations" / name, exported / "annotations" / name)


def test_two_sources_two_revisions(cli, project, tmp_path):
    """The issue's scenario: tag, HEAD~1, diff, remove, checkout."""
    cli("import", "-p", project, "-f", "coco_instances", "-n", "first", str(FIRST))
    cli("commit", "-p", project, "-m", "first source")
    cli("tag", "-p", project, "v1")
    cli("import", "-p", project, "-f", "coco_captions", "-n", "second", str(SECOND))
    cli("commit", "-p", project, "-m", "second source")

    for reference in ("v1", "HEAD~1"):
        out = tmp_path / f"export-{reference}"
        cli("export", "-p", project, "-f", "coco", "-o", str(out), "--rev", reference)
        _same_folder(FIRST, out)

    rows = json.loads(cli.text("diff", "-p", project, "v1", "HEAD", "--format", "json"))
    assert {(r["source"], r["subset"], r["kind"], r["added"], r["removed"], r["changed"]) for r in rows} == {
        ("second", "train", "items", 1, 0, 0), ("second", "train", "annotations", 1, 0, 0),
        ("second", "val", "items", 1, 0, 0), ("second", "val", "annotations", 2, 0, 0),
    }

    cli("remove", "-p", project, "second")
    cli("commit", "-p", project, "-m", "drop second")
    head = tmp_path / "head"
    cli("export", "-p", project, "-f", "coco", "-o", str(head), "--rev", "HEAD")
    _same_folder(FIRST, head)
    older = tmp_path / "older"
    cli("export", "-p", project, "-f", "coco_captions", "-o", str(older), "--rev", "HEAD~1")
    _same_folder(SECOND, older)

    cli("checkout", "-p", project, "v1")
    checked_out = tmp_path / "checked-out"
    cli("export", "-p", project, "-f", "coco", "-o", str(checked_out))
    _same_folder(FIRST, checked_out)


def test_export_rev_is_byte_identical_to_an_export_made_then(cli, project, tmp_path):
    cli("import", "-p", project, "-f", "coco", "-n", "all", str(DATA / "datumaro_coco" / "coco"))
    cli("commit", "-p", project, "-m", "one")
    then = tmp_path / "then"
    cli("export", "-p", project, "-f", "coco", "-o", str(then))
    cli("labels", "rename", "-p", project, "a", "renamed")
    cli("import", "-p", project, "-f", "coco_instances", "-n", "more", str(FIRST))
    cli("commit", "-p", project, "-m", "two")
    later = tmp_path / "later"
    cli("export", "-p", project, "-f", "coco", "-o", str(later), "--rev", "HEAD~1")
    files = sorted(p.relative_to(then) for p in then.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(later) for p in later.rglob("*") if p.is_file())
    for name in files:
        assert (then / name).read_bytes() == (later / name).read_bytes(), name


def test_log_lists_revisions_newest_first(cli, project):
    cli("import", "-p", project, "-f", "coco_instances", "-n", "first", str(FIRST))
    cli("commit", "-p", project, "-m", "first source")
    cli("tag", "-p", project, "v1")
    cli("import", "-p", project, "-f", "coco_captions", "-n", "second", str(SECOND))
    cli("commit", "-p", project, "-m", "second source")
    lines = cli.text("log", "-p", project).splitlines()
    assert len(lines) == 2
    assert " second source  [sources +1 -0 ~0, items +2 -0 ~0, annotations +3 -0 ~0, files +2 -0 ~0]" in lines[0]
    assert " first source (v1)  [" in lines[1]
    assert cli.text("log", "-p", project, "-n", "1").splitlines() == lines[:1]
    short = lines[1].split()[0]
    assert len(short) == 7
    out = cli.text("checkout", "-p", project, short[:4])
    assert out == f"working state is now {short} first source\n"


def test_references_and_their_errors(cli, project):
    assert cli.text("export", "-p", project, "-f", "coco", "-o", "x", "--rev", "HEAD", code=1) == (
        "Error: unknown revision 'HEAD': the project has no revisions yet; commit first\n"
    )
    cli("import", "-p", project, "-f", "coco_instances", "-n", "first", str(FIRST))
    cli("commit", "-p", project, "-m", "first")
    assert cli.text("checkout", "-p", project, "nope", code=1) == (
        "Error: unknown revision 'nope' (expected HEAD, HEAD~N, a tag or a revision id)\n"
    )
    assert cli.text("checkout", "-p", project, "HEAD~1", code=1) == (
        "Error: unknown revision 'HEAD~1': the history has only 1 revisions\n"
    )
    cli("tag", "-p", project, "v1")
    assert cli.text("tag", "-p", project, "v1", code=1) == "Error: a tag named 'v1' already exists\n"


def test_empty_commit_is_refused(cli, project):
    assert cli.text("commit", "-p", project, "-m", "nothing", code=1) == (
        "Error: nothing to commit: the working state equals HEAD (use --allow-empty to commit anyway)\n"
    )
    assert cli.text("commit", "-p", project, "-m", "nothing", "--allow-empty").startswith("[")


def test_dirty_checkout_is_refused_unless_forced(cli, project, tmp_path):
    cli("import", "-p", project, "-f", "coco_instances", "-n", "first", str(FIRST))
    cli("commit", "-p", project, "-m", "first")
    cli("import", "-p", project, "-f", "coco_captions", "-n", "second", str(SECOND))
    before = database_contents(Project.open(Path(project)))
    assert cli.text("checkout", "-p", project, "HEAD", code=1) == (
        "Error: the working state has uncommitted changes (see `dsrepo status`); "
        "commit them, or pass --force to drop them\n"
    )
    assert database_contents(Project.open(Path(project))) == before
    cli("checkout", "-p", project, "HEAD", "--force")
    assert cli.text("status", "-p", project) == "nothing to commit: the working state equals HEAD\n"


def test_status_shows_changes_per_source(cli, project):
    cli("import", "-p", project, "-f", "coco_instances", "-n", "first", str(FIRST))
    assert cli.text("status", "-p", project) == (
        "first:\n  sources: +1 -0 ~0\n  items: +2 -0 ~0\n  annotations: +3 -0 ~0\n  categories: +6 -0 ~0\n"
        "  files: +2 -0 ~0\n(labels):\n  labels: +3 -0 ~0\n"
    )
    cli("commit", "-p", project, "-m", "first")
    cli("labels", "rename", "-p", project, "a", "apple")
    assert cli.text("status", "-p", project) == (
        "first:\n  categories: +0 -0 ~2\n(labels):\n  labels: +0 -0 ~1\n"
    )


def test_checkout_then_commit_records_the_old_state(cli, project, tmp_path):
    cli("import", "-p", project, "-f", "coco_instances", "-n", "first", str(FIRST))
    cli("commit", "-p", project, "-m", "first")
    cli("remove", "-p", project, "first")
    cli("commit", "-p", project, "-m", "removed")
    cli("checkout", "-p", project, "HEAD~1")
    cli("commit", "-p", project, "-m", "restored")
    out = tmp_path / "out"
    cli("export", "-p", project, "-f", "coco", "-o", str(out), "--rev", "HEAD")
    _same_folder(FIRST, out)
    rows = json.loads(cli.text("diff", "-p", project, "HEAD~2", "HEAD", "--format", "json"))
    assert rows == []


def test_remove_unknown_source(cli, project):
    assert cli.text("remove", "-p", project, "ghost", code=1) == (
        "Error: no source named 'ghost' (the project has no sources)\n"
    )
