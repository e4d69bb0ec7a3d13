"""Bad input: every mistake gets one line naming file, record and field, exit 1, and leaves
the database exactly as it was, also when the project already holds data."""

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

from conftest import DATA
from helpers import database_contents, id_map, load_json
from repo.cli import main
from repo.exporting import export_dataset
from repo.importing import import_dataset
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


@pytest.fixture
def project_with_data(runner, backend) -> Path:
    args = backend.create_args()
    runner.invoke(main, ["create", *args], catch_exceptions=False)
    result = runner.invoke(main, ["import", "-p", args[1], "-f", "coco", "-n", "existing",
                                  str(DATA / "datumaro_coco" / "coco")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    runner.invoke(main, ["commit", "-p", args[1], "-m", "existing data"], catch_exceptions=False)
    return Path(args[1])


def _dataset(tmp_path: Path, task: str, content: bytes) -> tuple[Path, str]:
    folder = tmp_path / "bad"
    (folder / "annotations").mkdir(parents=True)
    (folder / "annotations" / f"{task}_val.json").write_bytes(content)
    return folder, os.path.join(str(folder), "annotations", f"{task}_val.json")


def _refused(runner, project_dir: Path, format_name: str, folder: Path, message: str) -> None:
    project = Project.open(project_dir)
    before = database_contents(project)
    result = runner.invoke(main, ["import", "-p", str(project_dir), "-f", format_name, "-n", "new", str(folder)])
    assert result.exit_code == 1, result.output
    assert result.stderr == f"Error: {message}\n"
    assert "Traceback" not in result.output
    assert database_contents(project) == before


@pytest.mark.parametrize("case,task,mutate,expected", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_bad_record_is_refused(runner, project_with_data, tmp_path, case, task, mutate, expected):
    document = copy.deepcopy(BASE)
    mutate(document)
    folder, shown = _dataset(tmp_path, task, json.dumps(document).encode())
    _refused(runner, project_with_data, "coco", folder, f"{shown}: {expected}")


@pytest.mark.parametrize("case,content,expected", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_unreadable_file_is_refused(runner, project_with_data, tmp_path, case, content, expected):
    folder, shown = _dataset(tmp_path, "instances", content)
    _refused(runner, project_with_data, "coco_instances", folder, f"{shown}: {expected}")


def test_the_base_document_is_valid(runner, project_with_data, tmp_path):
    """The mutations above are one step away from a file that imports."""
    for task in ("instances", "person_keypoints", "captions"):
        folder, _ = _dataset(tmp_path / task, task, json.dumps(BASE).encode())
        result = runner.invoke(main, ["import", "-p", str(project_with_data), "-f", "coco", "-n", task, str(folder)])
        assert result.exit_code == 0, result.output


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


def test_panoptic_fixture_is_valid(runner, project_with_data, panoptic_copy):
    result = runner.invoke(main, ["import", "-p", str(project_with_data), "-f", "coco_panoptic", "-n", "p", str(panoptic_copy)])
    assert result.exit_code == 0, result.output


def test_missing_png(runner, project_with_data, panoptic_copy):
    (panoptic_copy / "annotations" / "panoptic_val" / "b.png").unlink()
    _refused(runner, project_with_data, "coco_panoptic", panoptic_copy,
             f"{_png_shown(panoptic_copy)}: annotation for image id 40: field 'file_name': the PNG file does not exist")


def test_unreadable_png(runner, project_with_data, panoptic_copy):
    png = panoptic_copy / "annotations" / "panoptic_val" / "b.png"
    png.write_bytes(b"not a png at all")
    project = Project.open(project_with_data)
    before = database_contents(project)
    result = runner.invoke(main, ["import", "-p", str(project_with_data), "-f", "coco_panoptic", "-n", "p", str(panoptic_copy)])
    assert result.exit_code == 1
    prefix = f"Error: {_png_shown(panoptic_copy)}: annotation for image id 40: field 'file_name': the PNG cannot be read ("
    assert result.stderr.startswith(prefix) and result.stderr.count("\n") == 1
    assert database_contents(project) == before


def test_png_size_differs_from_image(runner, project_with_data):
    """Datumaro's panoptic train fixture: a 5x5 PNG for a 10x5 image (Decision 5)."""
    shown = os.path.join(str(PANOPTIC), "annotations", "panoptic_train") + "/a.png"
    _refused(runner, project_with_data, "coco_panoptic", PANOPTIC,
             f"{shown}: annotation for image id 5: field 'file_name': the PNG is 5x5 pixels, but the image is "
             "10x5 (width x height)")


def test_pixel_id_that_no_segment_lists(runner, project_with_data, panoptic_copy):
    _edit_panoptic(panoptic_copy, lambda d: d["annotations"][0]["segments_info"].pop())
    _refused(runner, project_with_data, "coco_panoptic", panoptic_copy,
             f"{_png_shown(panoptic_copy)}: annotation for image id 40: field 'segments_info': the PNG paints "
             "segment id 20, which segments_info does not list")


def test_listed_segment_without_pixels(runner, project_with_data, panoptic_copy):
    _edit_panoptic(panoptic_copy, lambda d: d["annotations"][0]["segments_info"].append(
        {"id": 99, "category_id": 1, "iscrowd": 0}))
    _refused(runner, project_with_data, "coco_panoptic", panoptic_copy,
             f"{_png_shown(panoptic_copy)}: segment id 99 of image id 40: field 'id': the segment has no pixels in the PNG")


def test_segment_listed_twice_overlaps(runner, project_with_data, panoptic_copy):
    _edit_panoptic(panoptic_copy, lambda d: d["annotations"][0]["segments_info"].append(
        copy.deepcopy(d["annotations"][0]["segments_info"][0])))
    shown = os.path.join(str(panoptic_copy), "annotations", "panoptic_val.json")
    _refused(runner, project_with_data, "coco_panoptic", panoptic_copy,
             f"{shown}: segment id 7 of image id 40: field 'id': the segment is listed twice (segments must not overlap)")


def test_png_file_name_climbing_out(runner, project_with_data, panoptic_copy):
    _edit_panoptic(panoptic_copy, lambda d: d["annotations"][0].update(file_name="../../b.png"))
    shown = os.path.join(str(panoptic_copy), "annotations", "panoptic_val.json")
    _refused(runner, project_with_data, "coco_panoptic", panoptic_copy,
             f"{shown}: annotation for image id 40: field 'file_name': the string \"../../b.png\" climbs out of "
             "the dataset folder with '..'")


def test_segment_id_beyond_24_bits(runner, project_with_data, panoptic_copy):
    _edit_panoptic(panoptic_copy, lambda d: d["annotations"][0]["segments_info"][0].update(id=2**24))
    shown = os.path.join(str(panoptic_copy), "annotations", "panoptic_val.json")
    _refused(runner, project_with_data, "coco_panoptic", panoptic_copy,
             f"{shown}: segment id 16777216 of image id 40: field 'id': expected 1 to 2^24-1 (a PNG pixel holds "
             "24 bits; 0 marks void pixels)")


def test_palette_png_is_decoded_as_rgb(runner, backend, panoptic_copy, tmp_path):
    """A PNG saved in palette mode still decodes to the same ids (Decision 3: convert("RGB"))."""
    png = panoptic_copy / "annotations" / "panoptic_val" / "b.png"
    Image.open(png).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(png)
    project = backend.create()
    import_dataset(project, "coco_panoptic", panoptic_copy)
    export_dataset(project, "coco_panoptic", tmp_path / "out")
    np.testing.assert_array_equal(id_map(png), id_map(tmp_path / "out" / "annotations" / "panoptic_val" / "b.png"))


# -- --on-error skip ------------------------------------------------------------------------

def test_skip_imports_the_good_records_and_reports_the_rest(runner, project_with_data, tmp_path):
    document = copy.deepcopy(BASE)
    good = document["annotations"][0]
    document["annotations"] = [
        good,
        {**good, "id": 8, "bbox": [1, 2]},
        {**good, "id": 9, "image_id": 6},
        {**good, "id": 10},
    ]
    document["images"].append({"id": 6, "file_name": "b.jpg", "width": -1, "height": 5})
    folder, shown = _dataset(tmp_path, "instances", json.dumps(document).encode())
    report = tmp_path / "report.json"
    result = runner.invoke(main, ["import", "-p", str(project_with_data), "-f", "coco", "-n", "partial",
                                  str(folder), "--on-error", "skip", "--error-report", str(report)])
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "note: 1 image files were not found (see `dsrepo info`)\n"
        f"skipped 3 bad records; details in {report}\n"
    )
    assert json.loads(report.read_text()) == [
        {"file": shown, "record": "image id 6", "field": "width",
         "problem": "expected a positive integer below 2^31, got the integer -1 (dsrepo needs every image's size)"},
        {"file": shown, "record": "annotation id 8", "field": "bbox",
         "problem": "expected 4 numbers [x, y, width, height], got a list of 2 values"},
        {"file": shown, "record": "annotation id 9", "field": "image_id", "problem": "no image in this file has id 6"},
    ]
    query = runner.invoke(main, ["query", "-p", str(project_with_data), "--format", "json",
                                 "SELECT coco_id FROM annotations_v WHERE source = 'partial' ORDER BY coco_id"])
    assert json.loads(query.output) == [{"coco_id": 7}, {"coco_id": 10}]
