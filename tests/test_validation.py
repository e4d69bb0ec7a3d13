"""Bad input: every mistake gets one line naming file, record and field.

Each case is checked on the reader itself (no database), and a few of them end to end: exit
1 from the CLI, and the database exactly as it was, also when the project already holds
data, on both databases."""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from helpers import DATA, database_contents, id_map, load_json
from repo.coco.reader import read_task_document, read_task_file
from repo.errors import InputError
from repo.exporting import export_dataset
from repo.formats.coco import CocoReader
from repo.formats.registry import ImportRequest
from repo.importing import import_dataset
from repo.model.policy import ErrorPolicy
from repo.progress import Silent
from repo.project import Project

BASE: dict[str, Any] = {
    "info": {"description": "validation"},
    "licenses": [],
    "categories": [{"id": 1, "name": "person", "supercategory": "human", "keypoints": ["nose", "eye"]}],
    "images": [{"id": 5, "file_name": "a.jpg", "width": 10, "height": 5}],
    "annotations": [{
        "id": 7, "image_id": 5, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0,
        "segmentation": [[1, 1, 3, 1, 3, 3]], "keypoints": [1, 1, 2, 2, 2, 1], "caption": "a person",
    }],
}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets `value` at a dotted path such as `annotations.0.bbox`."""
    def mutate(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        elif value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return mutate


_DELETE = object()
SHOWN = "annotations/instances_val.json"

# (case id, task, mutation of BASE, expected message after "FILE: ")
JSON_CASES = [
    ("images-not-a-list", "instances", _set("images", {"id": 5}),
     "field 'images': the section is an object, expected a list"),
    ("annotations-missing", "instances", _set("annotations", _DELETE),
     "field 'annotations': the section is missing; a instances file needs it"),
    ("unknown-image-id", "instances", _set("annotations.0.image_id", 99),
     "annotation id 7: field 'image_id': no image in this file has id 99"),
    ("unknown-category-id", "instances", _set("annotations.0.category_id", 42),
     "annotation id 7: field 'category_id': no category in this file has id 42"),
    ("duplicate-image-id", "instances",
     lambda d: d["images"].append({"id": 5, "file_name": "b.jpg", "width": 10, "height": 5}),
     "image id 5: field 'id': the id is listed twice"),
    ("duplicate-annotation-id", "instances", lambda d: d["annotations"].append(copy.deepcopy(d["annotations"][0])),
     "annotation id 7: field 'id': the id is listed twice"),
    ("bbox-three-numbers", "instances", _set("annotations.0.bbox", [1, 2, 3]),
     "annotation id 7: field 'bbox': expected 4 numbers [x, y, width, height], got a list of 3 values"),
    ("bbox-with-a-string", "instances", _set("annotations.0.bbox", [1, 2, 3, "4"]),
     "annotation id 7: field 'bbox': expected 4 numbers [x, y, width, height], got a list of 4 values"),
    ("polygon-odd", "instances", _set("annotations.0.segmentation", [[1, 1, 3, 1, 3, 3, 4]]),
     "annotation id 7: field 'segmentation': polygon part 0 has 7 coordinates, expected an even number "
     "and at least 6 (3 points)"),
    ("polygon-two-points", "instances", _set("annotations.0.segmentation", [[1, 1, 3, 3]]),
     "annotation id 7: field 'segmentation': polygon part 0 has 4 coordinates, expected an even number "
     "and at least 6 (3 points)"),
    ("rle-size-differs", "instances", _set("annotations.0.segmentation", {"counts": [50], "size": [4, 10]}),
     "annotation id 7: field 'segmentation': RLE size [4, 10] differs from the image's [height, width] = [5, 10]"),
    ("rle-counts-undecodable", "instances", _set("annotations.0.segmentation", {"counts": "!!", "size": [5, 10]}),
     "annotation id 7: field 'segmentation': invalid RLE: counts string holds a character outside the RLE alphabet"),
    ("rle-counts-wrong-total", "instances", _set("annotations.0.segmentation", {"counts": [1, 2], "size": [5, 10]}),
     "annotation id 7: field 'segmentation': invalid RLE: counts cover 3 pixels, expected height x width = 50"),
    ("rle-counts-negative", "instances", _set("annotations.0.segmentation", {"counts": [60, -10], "size": [5, 10]}),
     "annotation id 7: field 'segmentation': invalid RLE: counts must be a string or a list of integers from 0 to 2^32-1"),
    ("keypoints-length", "person_keypoints", _set("annotations.0.keypoints", [1, 1, 2, 2, 2]),
     "annotation id 7: field 'keypoints': expected 6 numbers (3 x the category's 2 keypoints), got 5"),
    ("width-missing", "instances", _set("images.0.width", _DELETE),
     "image id 5: field 'width': expected a positive integer below 2^31, got nothing (dsrepo needs every image's size)"),
    ("height-zero", "instances", _set("images.0.height", 0),
     "image id 5: field 'height': expected a positive integer below 2^31, got the integer 0 "
     "(dsrepo needs every image's size)"),
    ("caption-not-a-string", "captions", _set("annotations.0.caption", 3),
     "annotation id 7: field 'caption': expected a string, got the integer 3"),
    ("file-name-climbs-out", "instances", _set("images.0.file_name", "../../x.jpg"),
     "image id 5: field 'file_name': the string \"../../x.jpg\" climbs out of the dataset folder with '..'"),
    ("file-name-absolute", "instances", _set("images.0.file_name", "/etc/x.jpg"),
     "image id 5: field 'file_name': the string \"/etc/x.jpg\" is an absolute path; expected a path inside "
     "the dataset folder"),
    ("image-id-not-an-integer", "instances", _set("images.0.id", "5"),
     "images[0]: field 'id': expected an integer, got the string \"5\""),
    ("annotation-id-too-big", "instances", _set("annotations.0.id", 2**64),
     "annotations[0]: field 'id': the id 18446744073709551616 does not fit in 64 bits"),
]

RAW_CASES = [
    ("truncated", b'{"images": [', "not valid JSON (unexpected end of data at line 1 column 13)"),
    ("trailing-comma", b'{"images": [],}', "not valid JSON (trailing comma is not allowed at line 1 column 14)"),
    ("nan", b'{"images": [], "annotations": [], "categories": [], "x": NaN}',
     "not valid JSON (unexpected character, expected a JSON value at line 1 column 58)"),
    ("empty", b"", "empty file, expected a JSON object"),
    ("blank", b"  \n", "empty file, expected a JSON object"),
    ("not-utf8", b'{"images": [], "info": "\xff"}', "not UTF-8 text (byte 24 is invalid)"),
    ("top-level-list", b"[]", "the top-level value is a list of 0 values, expected an object"),
]


def _read(document: Any, task: str = "instances") -> Any:
    """The reader alone: no file, no database."""
    return read_task_document(document, SHOWN, task, "val", "instances_val.json", ErrorPolicy())


@pytest.mark.parametrize("case,task,mutate,expected", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_bad_record_is_refused_by_the_reader(case, task, mutate, expected):
    document = copy.deepcopy(BASE)
    mutate(document)
    with pytest.raises(InputError) as refused:
        _read(document, task)
    assert str(refused.value) == f"{SHOWN}: {expected}"


@pytest.mark.parametrize("case,content,expected", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_unreadable_file_is_refused_by_the_reader(tmp_path, case, content, expected):
    path = tmp_path / "instances_val.json"
    path.write_bytes(content)
    with pytest.raises(InputError) as refused:
        read_task_file(path, SHOWN, "instances", "val", ErrorPolicy())
    assert str(refused.value) == f"{SHOWN}: {expected}"


@pytest.mark.parametrize("task", ["instances", "person_keypoints", "captions"])
def test_the_base_document_is_valid(task):
    """The mutations above are one step away from a file that reads."""
    task_file = _read(copy.deepcopy(BASE), task)
    assert [a["coco_id"] for a in task_file.annotations] == [7]


def test_skip_keeps_the_good_records_and_names_the_bad_ones():
    document = _partly_bad()
    policy = ErrorPolicy(skip=True)
    task_file = read_task_document(document, SHOWN, "instances", "val", "instances_val.json", policy)
    assert [a["coco_id"] for a in task_file.annotations] == [7, 10]
    assert [str(error) for error in policy.skipped] == [f"{SHOWN}: {problem}" for problem in PARTLY_BAD_PROBLEMS]


# -- end to end: the CLI, on both databases, with a project that already holds data ---------

@pytest.fixture
def project_with_data(cli, backend) -> Path:
    args = backend.create_args()
    cli("create", *args)
    cli("import", "-p", args[1], "-f", "coco", "-n", "existing", DATA / "datumaro_coco" / "coco")
    cli("commit", "-p", args[1], "-m", "existing data")
    return Path(args[1])


def _dataset(tmp_path: Path, task: str, content: bytes) -> tuple[Path, str]:
    folder = tmp_path / "bad"
    (folder / "annotations").mkdir(parents=True)
    (folder / "annotations" / f"{task}_val.json").write_bytes(content)
    return folder, os.path.join(str(folder), "annotations", f"{task}_val.json")


def _refused(cli, project_dir: Path, format_name: str, folder: Path, message: str) -> None:
    project = Project.open(project_dir)
    before = database_contents(project)
    result = cli("import", "-p", project_dir, "-f", format_name, "-n", "new", folder, code=1)
    assert result.stderr == f"Error: {message}\n"
    assert "Traceback" not in result.output
    assert database_contents(project) == before


END_TO_END = ("bbox-three-numbers", "unknown-category-id", "rle-counts-wrong-total")


@pytest.mark.parametrize("case", END_TO_END)
def test_bad_record_fails_the_import_and_changes_nothing(cli, project_with_data, tmp_path, case):
    _, task, mutate, expected = next(c for c in JSON_CASES if c[0] == case)
    document = copy.deepcopy(BASE)
    mutate(document)
    folder, shown = _dataset(tmp_path, task, json.dumps(document).encode())
    _refused(cli, project_with_data, "coco", folder, f"{shown}: {expected}")


def test_unreadable_file_fails_the_import_and_changes_nothing(cli, project_with_data, tmp_path):
    _, content, expected = RAW_CASES[0]
    folder, shown = _dataset(tmp_path, "instances", content)
    _refused(cli, project_with_data, "coco_instances", folder, f"{shown}: {expected}")


# -- panoptic -------------------------------------------------------------------------------

PANOPTIC = DATA / "datumaro_coco" / "coco_panoptic"


@pytest.fixture
def panoptic_copy(tmp_path) -> Path:
    """The val subset of Datumaro's panoptic fixture: b.png (10x5 image) with segments 7 and 20."""
    folder = tmp_path / "panoptic"
    (folder / "annotations" / "panoptic_val").mkdir(parents=True)
    shutil.copy(PANOPTIC / "annotations" / "panoptic_val.json", folder / "annotations")
    shutil.copy(PANOPTIC / "annotations" / "panoptic_val" / "b.png", folder / "annotations" / "panoptic_val")
    return folder


def _edit_panoptic(folder: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = folder / "annotations" / "panoptic_val.json"
    document = load_json(path)
    edit(document)
    path.write_text(json.dumps(document))


def _png_shown(folder: Path) -> str:
    return os.path.join(str(folder), "annotations", "panoptic_val") + "/b.png"


def _read_panoptic(folder: Path) -> list[Any]:
    """The COCO format's reader alone (JSON, then the PNGs): no database."""
    reader = CocoReader(ImportRequest("coco_panoptic", folder, None, {"copy_images": False}))
    return [read.task_file for read in reader.read(ErrorPolicy(), Silent())]


def _panoptic_refused(folder: Path, message: str) -> None:
    with pytest.raises(InputError) as refused:
        _read_panoptic(folder)
    assert str(refused.value) == message


def test_panoptic_fixture_is_valid(panoptic_copy):
    [task_file] = _read_panoptic(panoptic_copy)
    assert [[s["coco_id"] for s in record.segments] for record in task_file.panoptic] == [[7, 20]]


def test_missing_png(panoptic_copy):
    (panoptic_copy / "annotations" / "panoptic_val" / "b.png").unlink()
    _panoptic_refused(panoptic_copy, f"{_png_shown(panoptic_copy)}: annotation for image id 40: field 'file_name': "
                                     "the PNG file does not exist")


def test_missing_png_fails_the_import_and_changes_nothing(cli, project_with_data, panoptic_copy):
    (panoptic_copy / "annotations" / "panoptic_val" / "b.png").unlink()
    _refused(cli, project_with_data, "coco_panoptic", panoptic_copy,
             f"{_png_shown(panoptic_copy)}: annotation for image id 40: field 'file_name': the PNG file does not exist")


def test_unreadable_png(panoptic_copy):
    png = panoptic_copy / "annotations" / "panoptic_val" / "b.png"
    png.write_bytes(b"not a png at all")
    with pytest.raises(InputError) as refused:
        _read_panoptic(panoptic_copy)
    prefix = f"{_png_shown(panoptic_copy)}: annotation for image id 40: field 'file_name': the PNG cannot be read ("
    assert str(refused.value).startswith(prefix) and "\n" not in str(refused.value)


def test_png_size_differs_from_image():
    """Datumaro's panoptic train fixture: a 5x5 PNG for a 10x5 image."""
    shown = os.path.join(str(PANOPTIC), "annotations", "panoptic_train") + "/a.png"
    _panoptic_refused(PANOPTIC, f"{shown}: annotation for image id 5: field 'file_name': the PNG is 5x5 pixels, "
                                "but the image is 10x5 (width x height)")


def test_pixel_id_that_no_segment_lists(panoptic_copy):
    _edit_panoptic(panoptic_copy, lambda d: d["annotations"][0]["segments_info"].pop())
    _panoptic_refused(panoptic_copy, f"{_png_shown(panoptic_copy)}: annotation for image id 40: field 'segments_info': "
                                     "the PNG paints segment id 20, which segments_info does not list")


def test_listed_segment_without_pixels(panoptic_copy):
    _edit_panoptic(panoptic_copy, lambda d: d["annotations"][0]["segments_info"].append(
        {"id": 99, "category_id": 1, "iscrowd": 0}))
    _panoptic_refused(panoptic_copy, f"{_png_shown(panoptic_copy)}: segment id 99 of image id 40: field 'id': "
                                     "the segment has no pixels in the PNG")


def test_segment_listed_twice_overlaps(panoptic_copy):
    _edit_panoptic(panoptic_copy, lambda d: d["annotations"][0]["segments_info"].append(
        copy.deepcopy(d["annotations"][0]["segments_info"][0])))
    shown = os.path.join(str(panoptic_copy), "annotations", "panoptic_val.json")
    _panoptic_refused(panoptic_copy, f"{shown}: segment id 7 of image id 40: field 'id': the segment is listed twice "
                                     "(segments must not overlap)")


def test_png_file_name_climbing_out(panoptic_copy):
    _edit_panoptic(panoptic_copy, lambda d: d["annotations"][0].update(file_name="../../b.png"))
    shown = os.path.join(str(panoptic_copy), "annotations", "panoptic_val.json")
    _panoptic_refused(panoptic_copy, f"{shown}: annotation for image id 40: field 'file_name': the string "
                                     "\"../../b.png\" climbs out of the dataset folder with '..'")


def test_segment_id_beyond_24_bits(panoptic_copy):
    _edit_panoptic(panoptic_copy, lambda d: d["annotations"][0]["segments_info"][0].update(id=2**24))
    shown = os.path.join(str(panoptic_copy), "annotations", "panoptic_val.json")
    _panoptic_refused(panoptic_copy, f"{shown}: segment id 16777216 of image id 40: field 'id': expected 1 to 2^24-1 "
                                     "(a PNG pixel holds 24 bits; 0 marks void pixels)")


def test_palette_png_is_decoded_as_rgb(backend, panoptic_copy, tmp_path):
    """A PNG saved in palette mode still decodes to the same ids (it is read as RGB)."""
    png = panoptic_copy / "annotations" / "panoptic_val" / "b.png"
    Image.open(png).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(png)
    project = backend.create()
    import_dataset(project, "coco_panoptic", panoptic_copy)
    export_dataset(project, "coco_panoptic", tmp_path / "out")
    np.testing.assert_array_equal(id_map(png), id_map(tmp_path / "out" / "annotations" / "panoptic_val" / "b.png"))


# -- --on-error skip ------------------------------------------------------------------------

def _partly_bad() -> dict[str, Any]:
    """BASE with three bad records among good ones (an image and two annotations)."""
    document = copy.deepcopy(BASE)
    good = document["annotations"][0]
    document["annotations"] = [
        good,
        {**good, "id": 8, "bbox": [1, 2]},
        {**good, "id": 9, "image_id": 6},
        {**good, "id": 10},
    ]
    document["images"].append({"id": 6, "file_name": "b.jpg", "width": -1, "height": 5})
    return document


PARTLY_BAD_PROBLEMS = [
    "image id 6: field 'width': expected a positive integer below 2^31, got the integer -1 "
    "(dsrepo needs every image's size)",
    "annotation id 8: field 'bbox': expected 4 numbers [x, y, width, height], got a list of 2 values",
    "annotation id 9: field 'image_id': no image in this file has id 6",
]


def _skipped(shown: str) -> list[dict[str, str]]:
    """The report's records for the three bad records of `_partly_bad`."""
    return [
        {"file": shown, "record": record, "field": field, "problem": problem}
        for record, field, problem in (
            ("image id 6", "width",
             "expected a positive integer below 2^31, got the integer -1 (dsrepo needs every image's size)"),
            ("annotation id 8", "bbox", "expected 4 numbers [x, y, width, height], got a list of 2 values"),
            ("annotation id 9", "image_id", "no image in this file has id 6"),
        )
    ]


def test_skip_imports_the_good_records_and_reports_the_rest(cli, project_with_data, tmp_path):
    folder, shown = _dataset(tmp_path, "instances", json.dumps(_partly_bad()).encode())
    report = tmp_path / "report.json"
    result = cli("import", "-p", project_with_data, "-f", "coco", "-n", "partial", folder,
                 "--on-error", "skip", "--error-report", report)
    assert result.stderr == (
        "note: 1 image files were not found (see `dsrepo info`)\n"
        f"skipped 3 bad records; details in {report}\n"
    )
    assert json.loads(report.read_text()) == _skipped(shown)
    query = cli.text("query", "-p", project_with_data, "--format", "json",
                     "SELECT coco_id FROM annotations_v WHERE source = 'partial' ORDER BY coco_id")
    assert json.loads(query) == [{"coco_id": 7}, {"coco_id": 10}]


def test_python_callers_get_the_same_skip_report_as_the_cli(cli, backend, tmp_path):
    """import_dataset writes the report itself: by default DIR/import-errors-NAME.json, as the
    CLI does; the CLI's report (default path) has the same records."""
    folder, shown = _dataset(tmp_path, "instances", json.dumps(_partly_bad()).encode())
    project = backend.create("api")
    result = import_dataset(project, "coco", str(folder), name="partial", on_error="skip")
    assert result.error_report == project.directory / "import-errors-partial.json"
    assert json.loads(result.error_report.read_text()) == _skipped(shown)
    args = backend.create_args("cli")
    cli("create", *args)
    printed = cli("import", "-p", args[1], "-f", "coco", "-n", "partial", folder, "--on-error", "skip")
    default = Path(args[1]) / "import-errors-partial.json"
    assert f"skipped 3 bad records; details in {default}\n" in printed.stderr
    assert default.read_text() == result.error_report.read_text()
