"""The Python API as a caller sees it: documented names, string paths, and errors that say
what went wrong by their class."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
from pathlib import Path

import pytest

import repo
from helpers import DATA, database_contents
from repo.errors import NotFoundError, OptionError, OutputError

PACKAGE = Path(repo.__file__).parent
INSTANCES = DATA / "datumaro_coco" / "coco_instances"


@pytest.mark.parametrize("name", repo.__all__)
def test_every_public_name_is_documented_where_it_is_defined(name):
    obj = getattr(repo, name)
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else obj.__doc__
    generated = isinstance(obj, type) and dataclasses.is_dataclass(obj) and (doc or "").startswith(f"{name}(")
    assert doc and doc.strip() and not generated, f"{name} has no docstring"
    assert obj.__name__ == name
    assert getattr(importlib.import_module(obj.__module__), name) is obj


def test_no_error_is_raised_as_the_bare_base_class():
    """Every user error is a subclass that names what went wrong."""
    bare = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
        and getattr(node.exc.func, "id", None) == "DsrepoError"
    ]
    assert not bare


def test_paths_may_be_strings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    repo.Project.create("project").close()
    project = repo.Project.open("project")
    result = repo.import_dataset(project, "coco_instances", str(INSTANCES), name="a", label_map={"a": "renamed"})
    assert result.images == 2
    repo.export_dataset(project, "coco_instances", "out", save_images=True)
    exported = json.loads(Path("out/annotations/instances_val.json").read_text())
    assert "renamed" in {category["name"] for category in exported["categories"]}
    repo.compute_stats(project, plot="stats.png")
    assert Path("stats.png").is_file()


def test_errors_say_what_went_wrong_by_their_class(tmp_path):
    with pytest.raises(NotFoundError, match="is not a dsrepo project"):
        repo.Project.open(str(tmp_path / "nowhere"))
    project = repo.Project.create(tmp_path / "project")
    with pytest.raises(NotFoundError, match="no such file or folder"):
        repo.import_dataset(project, "coco", tmp_path / "missing")
    with pytest.raises(NotFoundError, match="unknown import format 'voc'"):
        repo.import_dataset(project, "voc", INSTANCES)
    with pytest.raises(OptionError, match="a commit needs a message"):
        repo.commit(project, " ")
    with pytest.raises(OptionError, match="on_error must be one of fail, skip"):
        repo.import_dataset(project, "coco", INSTANCES, on_error="ignore")


def test_a_report_that_cannot_be_written_rolls_the_import_back(tmp_path):
    project = repo.Project.create(tmp_path / "project")
    dataset = tmp_path / "dataset" / "annotations"
    dataset.mkdir(parents=True)
    document = json.loads((INSTANCES / "annotations" / "instances_val.json").read_text())
    document["annotations"][0]["bbox"] = [1, 2]
    (dataset / "instances_val.json").write_text(json.dumps(document))
    before = database_contents(project)
    report = tmp_path / "no" / "such" / "folder" / "report.json"
    with pytest.raises(OutputError, match=f"{report}: cannot be written"):
        repo.import_dataset(project, "coco", dataset.parent, on_error="skip", error_report=report)
    assert database_contents(project) == before
