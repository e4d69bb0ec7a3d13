"""render: pixels checked with numpy against the original photograph (decoded by Pillow) and
the annotations' own pixels (pycocotools for the JSON masks, Pillow for the panoptic PNG)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import DATA
from helpers import id_map, load_json, masks_of
from repo.importing import import_dataset
from repo.render import render_item
from vizdata import IMAGE, IMAGE_ID, POINTS, write_extras

PANOPTIC = DATA / "panopticapi_sample" / "coco"
ANNOTATIONS = PANOPTIC / "annotations"
PHOTO = PANOPTIC / "images" / "val2017" / IMAGE


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(np.int16)


def _changed(drawn: np.ndarray, original: np.ndarray) -> np.ndarray:
    return (drawn[: original.shape[0], : original.shape[1]] != original).any(axis=2)


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    for _ in range(steps):
        padded = np.pad(mask, 1, constant_values=False)
        mask = mask & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask


def _near_box(shape: tuple[int, int], bbox: list[float], margin: int) -> np.ndarray:
    """Pixels within `margin` of a box's edges, and the label tag band at its top-left."""
    rows, columns = np.indices(shape)
    x0, y0, w, h = bbox
    x1, y1 = x0 + w, y0 + h
    inside = (columns >= x0 - margin) & (columns <= x1 + margin) & (rows >= y0 - margin) & (rows <= y1 + margin)
    core = (columns > x0 + margin) & (columns < x1 - margin) & (rows > y0 + margin) & (rows < y1 - margin)
    tag = (rows >= y0 - margin) & (rows <= y0 + 22) & (columns >= x0 - margin) & (columns <= x0 + 130)
    return (inside & ~core) | tag


def _segments(image_id: int) -> list[tuple[dict, np.ndarray]]:
    """Each panoptic segment of the image with its pixels, from the PNG."""
    panoptic = load_json(ANNOTATIONS / "panoptic_val2017.json")
    record = next(r for r in panoptic["annotations"] if r["image_id"] == image_id)
    pixels = id_map(ANNOTATIONS / "panoptic_val2017" / record["file_name"])
    return [(segment, pixels == segment["id"]) for segment in record["segments_info"]]


def _instances(image_id: int, label: str | None = None) -> list[tuple[dict, np.ndarray]]:
    data = load_json(ANNOTATIONS / "instances_val2017.json")
    ids = {c["id"] for c in data["categories"] if label is None or c["name"] == label}
    masks = masks_of(ANNOTATIONS / "instances_val2017.json")
    return [
        (a, masks[a["id"]].astype(bool)) for a in data["annotations"]
        if a["image_id"] == image_id and a["category_id"] in ids
    ]


@pytest.fixture
def sample(backend):
    project = backend.create()
    import_dataset(project, "coco", PANOPTIC, name="coco")
    return project


@pytest.mark.parametrize("task", ["instances", "panoptic"])
def test_pixels_change_inside_each_annotation_and_not_far_away(sample, tmp_path, task):
    out = tmp_path / "person.png"
    result = render_item(sample, IMAGE, out, tasks=[task], where="label = 'person'")
    drawn, original = _pixels(out), _pixels(PHOTO)
    assert drawn.shape == original.shape and result.notes == []
    changed = _changed(drawn, original)
    persons = _instances(IMAGE_ID, "person") if task == "instances" else [
        (segment, mask) for segment, mask in _segments(IMAGE_ID) if segment["category_id"] == 1
    ]
    assert result.annotations == len(persons) > 10
    for annotation, mask in persons:
        share = changed[mask].mean()
        if annotation["iscrowd"]:
            assert 0.3 < share < 0.8, (annotation["id"], share)  # hatched: stripes, not a fill
        else:
            assert share > 0.95, (annotation["id"], share)
    top = min(annotation["bbox"][1] for annotation, _ in persons)
    assert top > 100 and not changed[: int(top) - 3].any()  # far above every person


def test_panoptic_segments_take_their_category_colour(sample, tmp_path):
    panoptic = load_json(ANNOTATIONS / "panoptic_val2017.json")
    colours = {c["id"]: np.array(c["color"]) for c in panoptic["categories"]}
    out = tmp_path / "panoptic.png"
    render_item(sample, IMAGE, out, tasks=["panoptic"])
    drawn, original = _pixels(out), _pixels(PHOTO)
    segments = _segments(IMAGE_ID)
    tags = np.zeros(original.shape[:2], dtype=bool)
    for segment, _ in segments:
        tags |= _near_box(tags.shape, segment["bbox"], 3)  # label tags sit at each box's corner
    for segment, mask in segments:
        interior = _erode(mask, 2) & ~tags
        if segment["iscrowd"] or interior.sum() < 50:
            continue
        colour = colours[segment["category_id"]]
        before = np.abs(original[interior] - colour).sum(axis=1)
        after = np.abs(drawn[interior] - colour).sum(axis=1)
        assert (after < before).mean() > 0.95, segment["id"]


def test_keypoints_polygons_and_captions(backend, tmp_path):
    project = backend.create()
    extras = write_extras(tmp_path / "extras")
    import_dataset(project, "coco", extras, name="extras")
    original = _pixels(PHOTO)
    out = tmp_path / "keypoints.png"
    render_item(project, IMAGE, out, tasks=["person_keypoints"])
    drawn = _pixels(out)
    changed = _changed(drawn, original)
    polygon = masks_of(extras / "annotations" / "person_keypoints_val2017.json")[900001].astype(bool)
    assert changed[polygon].mean() > 0.95
    visible = [(x, y) for x, y, v in POINTS if v == 2]
    occluded = [(x, y) for x, y, v in POINTS if v == 1]
    unlabelled = [(x, y) for x, y, v in POINTS if v == 0]
    assert all(changed[y, x] for x, y in visible + occluded)
    assert {tuple(drawn[y, x]) for x, y in visible}.isdisjoint({tuple(drawn[y, x]) for x, y in occluded})
    for x, y in unlabelled:
        assert not changed[y - 6:y + 7, x - 6:x + 7].any()
    assert not changed[:, 240:].any()  # far from the only annotation (x 110-210)

    captioned = tmp_path / "captions.png"
    render_item(project, IMAGE, captioned, tasks=["captions"])
    drawn = _pixels(captioned)
    assert drawn.shape[0] > original.shape[0] and drawn.shape[1] == original.shape[1]
    np.testing.assert_array_equal(drawn[: original.shape[0]], original)  # captions draw nothing over the image
    band = drawn[original.shape[0]:]
    assert (band.sum(axis=2) < 200).sum() > 100  # dark text on the light band


def test_a_label_keeps_its_colour_whatever_else_is_drawn(sample, tmp_path):
    only, both = tmp_path / "only.png", tmp_path / "both.png"
    render_item(sample, 439180, only, tasks=["instances"], where="label = 'person'")
    render_item(sample, 439180, both, tasks=["instances"], where="label IN ('horse', 'person')")
    region = np.zeros((360, 640), dtype=bool)
    for annotation, mask in _instances(439180, "person"):
        if not annotation["iscrowd"]:
            region |= _erode(mask, 3)
    for annotation, _ in _instances(439180, "person") + _instances(439180, "horse"):
        region &= ~_near_box(region.shape, annotation["bbox"], 4)
    for annotation, mask in _instances(439180, "horse"):
        region &= ~mask
    assert region.sum() > 1000
    np.testing.assert_array_equal(_pixels(only)[region], _pixels(both)[region])
    # The colour comes from the label's name, not from Python's per-process string hashing.
    script = "from repo.render import label_colour; print(label_colour('person'))"
    outputs = {
        subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": seed},
                       capture_output=True, text=True, check=True).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_cli_renders_by_coco_id_and_draws_a_canvas_for_a_missing_image(cli, backend, tmp_path):
    dataset = tmp_path / "coco"
    shutil.copytree(PANOPTIC, dataset)
    args = backend.create_args()
    cli("create", *args)
    cli("import", "-p", args[1], "-f", "coco", dataset)
    out = tmp_path / "by-id.png"
    result = cli("render", "-p", args[1], IMAGE_ID, "-o", out, "--tasks", "instances")
    assert result.stdout == f"rendered val2017/{IMAGE} (source coco, 18 annotations) to {out}\n"
    assert _pixels(out).shape == _pixels(PHOTO).shape

    (dataset / "images" / "val2017" / IMAGE).unlink()
    canvas = tmp_path / "canvas.png"
    result = cli("render", "-p", args[1], IMAGE, "-o", canvas, "--tasks", "instances", "--where", "label = 'person'")
    assert result.stderr == (
        f"note: image val2017/{IMAGE} is not stored in the database nor at "
        f"{(dataset / 'images' / 'val2017' / IMAGE).resolve()}; drawn on a blank canvas\n"
    )
    drawn = _pixels(canvas)
    assert drawn.shape == (427, 640, 3)
    far = drawn[:100].reshape(-1, 3)
    assert len(np.unique(far, axis=0)) == 1 and len(set(far[0])) == 1  # one grey, where nothing is drawn
    assert len(np.unique(drawn[150:350].reshape(-1, 3), axis=0)) > 3  # the annotations are drawn on it


def test_cli_user_errors(cli, backend, tmp_path):
    args = backend.create_args()
    cli("create", *args)
    cli("import", "-p", args[1], "-f", "coco", "-n", "a", PANOPTIC)
    cli("import", "-p", args[1], "-f", "coco_instances", "-n", "b", PANOPTIC)
    out = tmp_path / "x.png"
    cases = [
        (["nope.jpg"], "Error: no item has the file name or COCO image id 'nope.jpg'\n"),
        ([IMAGE, "--tasks", "instance"], "Error: unknown task 'instance' (known tasks: instances, person_keypoints, "
                                         "captions, labels, image_info, panoptic, stuff)\n"),
        ([IMAGE, "--where", "nonsense ="], None),
        ([IMAGE, "--rev", "HEAD"], "Error: unknown revision 'HEAD': the project has no revisions yet; commit first\n"),
    ]
    for extra, message in cases:
        error = cli.text("render", "-p", args[1], *extra, "-o", out, code=1)
        if message:
            assert error == message
        else:
            assert error.startswith("Error: --where: ") and error.count("\n") == 1
        assert not out.exists()
    both = cli.text("render", "-p", args[1], IMAGE, "-o", out, "--tasks", "instances,panoptic")
    expected = 2 * len(_instances(IMAGE_ID)) + len(_segments(IMAGE_ID))  # a's and b's instances, a's segments
    assert f"(sources a, b, {expected} annotations)" in both
    wrong = cli.text("render", "-p", args[1], IMAGE, "-o", tmp_path / "x.unknown", code=1)
    assert wrong.startswith("Error: ") and "unknown image format '.unknown'" in wrong
