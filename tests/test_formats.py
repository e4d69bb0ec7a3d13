"""The format registry: the CLI's choices, help and options come from it, and so do the API's
checks. A toy format registered here (options of every kind, a writer of its own) shows that
a format plugs in through the registry alone."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from helpers import DATA
from repo.errors import OptionError
from repo.exporting import ExportResult, export_dataset
from repo.formats import registry
from repo.formats.coco import CocoReader
from repo.formats.registry import (
    ExportContext,
    Format,
    ImportRequest,
    boolean,
    choice,
    comma_list,
    flag,
    list_formats,
    path,
    register,
    text,
)
from repo.importing import import_dataset
from repo.project import Project
from repo.query import annotations_view

INSTANCES = DATA / "datumaro_coco" / "coco_instances"
TOY_OPTIONS = (
    flag("shout", "--shout", help="Write labels in capitals."),
    boolean("sorted_labels", "--sorted-labels", default=True, help="Sort the labels."),
    choice("separator", "--separator", choices=("newline", "comma"), default="newline", help="Between labels."),
    comma_list("only", "--only", help="Only these labels."),
    path("summary", "--summary", help="Also write counts to this JSON file."),
    text("title", "--title", help="A first line."),
)


def write_toy(context: ExportContext) -> ExportResult:
    """Labels of the exported annotations, one file; what the options say shapes it."""
    view = annotations_view(context.snapshot).subquery()
    query = select(view.c.label, view.c.row_id).where(view.c.label.is_not(None))
    rows = [row for row in context.connection.execute(query) if context.selected is None or row.row_id in context.selected]
    labels = [row.label for row in rows if not context.options["only"] or row.label in context.options["only"]]
    if context.options["sorted_labels"]:
        labels.sort()
    if context.options["shout"]:
        labels = [label.upper() for label in labels]
    lines = ([context.options["title"]] if context.options["title"] else []) + labels
    target = context.output_path("labels.txt")
    target.write_text(("\n" if context.options["separator"] == "newline" else ",").join(lines), encoding="utf-8")
    if context.options["summary"] is not None:
        context.options["summary"].write_text(json.dumps({"labels": len(labels)}))
    return ExportResult(files=[target], annotations=len(labels))


def open_toy(request: ImportRequest) -> CocoReader:
    """Reads a COCO instances folder: import support, with an option of its own."""
    return CocoReader(dataclasses.replace(request, format="coco_instances", options={"copy_images": False}))


def labels_in_files() -> list[str]:
    """The label of every annotation of the toy project's input, read from its files."""
    labels = []
    for annotation_file in sorted((INSTANCES / "annotations").glob("*.json")):
        document = json.loads(annotation_file.read_text())
        names = {category["id"]: category["name"] for category in document["categories"]}
        labels += [names[annotation["category_id"]] for annotation in document["annotations"]]
    return labels


TOY = Format(
    "toy", "A labels list, for tests.", reader=open_toy, writer=write_toy,
    import_options=(flag("careful", "--careful", help="Nothing, carefully."),), export_options=TOY_OPTIONS,
)


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Format:
    list_formats()  # the built-in formats first
    monkeypatch.setattr(registry, "_FORMATS", dict(registry._FORMATS))  # restored after the test
    return register(TOY)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    with Project.create(tmp_path / "project") as created:
        import_dataset(created, "coco_instances", INSTANCES, name="a")
    return tmp_path / "project"


# -- help ------------------------------------------------------------------------------------

@pytest.mark.parametrize("command,role", [("import", "import"), ("update", "import"), ("export", "export"),
                                          ("convert", "export")])
def test_every_format_option_appears_in_help(cli, toy, command, role):
    shown = cli.text(command, "--help")
    assert f"Format options ({role}; after --, or before it):" in shown
    for registered in list_formats():
        if registered.reader if role == "import" else registered.writer:
            assert registered.name in shown
            for option in registered.import_options if role == "import" else registered.export_options:
                for spelling in option.flags:
                    assert spelling in shown, (registered.name, spelling)
                assert option.help.split()[0] in shown


def test_the_formats_command_lists_formats_and_options(cli, toy):
    shown = cli.text("formats")
    for registered in list_formats():
        can = ", ".join(role for role, supported in (("import", registered.reader), ("export", registered.writer)) if supported)
        assert f"{registered.name}  [{can}]  {registered.help}" in shown
    assert "voc  [export]  Pascal VOC" in shown
    assert "--separator newline|comma  Between labels.  [default: newline]" in shown
    assert "--save-images, --save-media  Also write the images, to images/<subset>/." in shown


def test_format_choices_come_from_the_registry(cli, toy, project, tmp_path):
    cli("export", "-p", project, "-f", "toy", "-o", tmp_path / "out")
    assert (tmp_path / "out" / "labels.txt").read_text() == "\n".join(sorted(labels_in_files()))


# -- format options on the command line -------------------------------------------------------

def test_options_of_every_kind_after_double_dash(cli, toy, project, tmp_path):
    summary = tmp_path / "summary.json"
    cli("export", "-p", project, "-f", "toy", "-o", tmp_path / "out", "--", "--shout", "--sorted-labels", "false",
        "--separator", "comma", "--only", "b", "--summary", summary, "--title", "labels")
    kept = [label.upper() for label in labels_in_files() if label == "b"]
    assert (tmp_path / "out" / "labels.txt").read_text() == ",".join(["labels", *kept])
    assert json.loads(summary.read_text()) == {"labels": len(kept)}


def test_an_option_is_accepted_before_and_after_double_dash(cli, project, tmp_path):
    for number, args in enumerate((["--save-images", "--"], ["--", "--save-media"], ["--reindex", "--save-images"])):
        out = tmp_path / f"out{number}"
        result = cli("export", "-p", project, "-f", "coco_instances", "-o", out, *args)
        assert result.stdout.endswith("saved 2 images\n"), args
        assert (out / "images" / "train" / "a.jpg").is_file()


def test_a_bare_boolean_option_is_on_and_takes_a_value(cli, project, tmp_path):
    ids = {}
    for number, args in enumerate((["--reindex"], ["--reindex", "false"], ["--reindex", "1"])):
        cli("export", "-p", project, "-f", "coco_instances", "-o", tmp_path / f"o{number}", "--", *args)
        document = json.loads((tmp_path / f"o{number}" / "annotations" / "instances_val.json").read_text())
        ids[number] = [image["id"] for image in document["images"]]
    assert ids == {0: [1], 1: [40], 2: [1]}


@pytest.mark.parametrize("command", ["import", "export"])
def test_an_unknown_option_after_double_dash_is_a_usage_error(cli, project, tmp_path, command):
    args = ["-f", "coco", INSTANCES] if command == "import" else ["-f", "coco", "-o", tmp_path / "o"]
    result = cli(command, "-p", project, *args, "--", "--bogus", code=2)
    assert "Error: No such option '--bogus'." in result.stderr


def test_an_option_of_another_format_is_a_usage_error(cli, toy, project, tmp_path):
    result = cli("export", "-p", project, "-f", "coco", "-o", tmp_path / "o", "--", "--shout", code=2)
    assert result.stderr.endswith(
        "Error: --shout is not an option of format 'coco' (its options: --save-images, --reindex, --reindex-map, "
        "--tasks, --subsets, --sources, --segmentation-mode, --rle-form, --crop-covered, --allow-attributes, "
        "--save-dataset-meta, --image-ext, --merge-images, --regenerate-png)\n"
    )
    assert not (tmp_path / "o").exists()


def test_a_bad_option_value_is_a_usage_error(cli, toy, project, tmp_path):
    result = cli("export", "-p", project, "-f", "toy", "-o", tmp_path / "o", "--separator", "tab", code=2)
    assert "Invalid value for '--separator': 'tab' is not one of 'newline', 'comma'." in result.stderr
    result = cli("export", "-p", project, "-f", "coco", "-o", tmp_path / "o", "--reindex-map", tmp_path / "m.json",
                 code=2)
    assert result.stderr.endswith("Error: option --reindex-map needs --reindex\n")


def test_import_options_come_from_the_registry(cli, toy, project):
    cli("import", "-p", project, "-f", "toy", "-n", "toy", INSTANCES, "--", "--careful")
    result = cli("import", "-p", project, "-f", "coco", "-n", "b", INSTANCES, "--careful", code=2)
    assert result.stderr.endswith("Error: --careful is not an option of format 'coco' (its options: --copy-images, "
                                 "--keep-original-category-ids, --subset)\n")


# -- format options in Python -----------------------------------------------------------------

def test_the_api_rejects_an_unknown_option_naming_the_valid_ones(project, tmp_path):
    with pytest.raises(OptionError) as refused:
        export_dataset(Project.open(project), "coco", tmp_path / "o", save_media=True)
    assert str(refused.value) == (
        "format 'coco' has no export option 'save_media' (its export options: save_images (--save-images), "
        "reindex (--reindex), reindex_map (--reindex-map), tasks (--tasks), subsets (--subsets), sources (--sources), "
        "segmentation_mode (--segmentation-mode), rle_form (--rle-form), crop_covered (--crop-covered), "
        "allow_attributes (--allow-attributes), save_dataset_meta (--save-dataset-meta), image_ext (--image-ext), "
        "merge_images (--merge-images), regenerate_png (--regenerate-png))"
    )
    with pytest.raises(OptionError, match="format 'coco_instances' has no import option 'reindex'"):
        import_dataset(Project.open(project), "coco_instances", INSTANCES, name="x", reindex=True)
    assert not (tmp_path / "o").exists()


def test_the_api_converts_and_checks_option_values(toy, project, tmp_path):
    opened = Project.open(project)
    export_dataset(opened, "toy", str(tmp_path / "o"), only="a, b", sorted_labels="false", summary=str(tmp_path / "s"))
    kept = [label for label in labels_in_files() if label in ("a", "b")]
    assert sorted((tmp_path / "o" / "labels.txt").read_text().split("\n")) == sorted(kept)
    assert json.loads((tmp_path / "s").read_text()) == {"labels": len(kept)}
    for bad, message in (
        ({"separator": "tab"}, "option --separator (separator): 'tab' is not valid; expected one of newline, comma"),
        ({"shout": "maybe"}, "option --shout (shout): 'maybe' is not valid; expected true or false"),
        ({"only": 3}, "option --only (only): 3 is not valid; expected names separated by commas, or a list of names"),
    ):
        with pytest.raises(OptionError) as refused:
            export_dataset(opened, "toy", tmp_path / "bad", **bad)
        assert str(refused.value) == message
    with pytest.raises(OptionError, match="option --reindex-map needs --reindex"):
        export_dataset(opened, "coco", tmp_path / "bad", reindex_map=tmp_path / "map.json")


# -- registering -------------------------------------------------------------------------------

def test_registration_refuses_clashes(toy):
    with pytest.raises(ValueError, match="already registered"):
        register(TOY)
    unlike = Format("other", "x", writer=write_toy, export_options=(flag("separator", "--separator", help="x"),))
    with pytest.raises(ValueError, match="declares option 'separator' unlike format 'toy'"):
        register(unlike)
    taken = Format("other", "x", writer=write_toy, export_options=(flag("loud", "--shout", help="x"),))
    with pytest.raises(ValueError, match="--shout is option 'shout' of format 'toy'"):
        register(taken)
    alike = Format("other", "x", writer=write_toy, export_options=(
        choice("separator", "--separator", choices=("newline", "comma"), default="comma", help="Its own help."),
    ))
    assert register(alike) is alike  # defaults and help may differ
    with pytest.raises(ValueError, match="a keyword of the API functions"):
        flag("overwrite", "--overwrite-all", help="x")
    with pytest.raises(ValueError, match="--where is an option of the commands themselves"):
        text("condition", "--where", help="x")
