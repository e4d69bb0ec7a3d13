"""The YOLO (Ultralytics) writer, checked by parsing its output independently.

Input: a held-aside synthetic instances set (scripts/gen_coco.py: polygons of 1..3 parts,
compressed RLE, crowd masks), read with plain `json`. Oracles: the COCO boxes converted with
numpy, pycocotools rasterising the original and the written polygons, yaml.safe_load for
data.yaml, and Ultralytics' rule for where an image's label file lies.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from pycocotools import mask as coco_mask

import helpers  # noqa: F401  (puts scripts/ on sys.path for gen_coco)
from coco_items import coco_items
from gen_coco import generate
from repo.errors import UnsupportedError
from repo.formats.exportable import BBOX, MASK, POLYGON, ExportAnnotation, ExportItem
from repo.formats.yolo import YoloOptions, join_parts, subset_key, write_yolo

SUBSET = "val2017"


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "edge_cases"])
def held_aside(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("instances")
    generate(root, images=8 if request.param else 40, seed=11, tasks=["instances"], edge_cases=request.param,
             write_images=True)
    return root


def _coco(root: Path) -> dict:
    return json.loads((root / "annotations" / f"instances_{SUBSET}.json").read_text(encoding="utf-8"))


def _export(root: Path, out: Path, segments: bool):
    labels, items = coco_items(root / "annotations" / f"instances_{SUBSET}.json", root / "images" / SUBSET, SUBSET)
    out.mkdir()
    return write_yolo(out, labels, items, YoloOptions(save_images=True, segments=segments))


def _label_file(out: Path, file_name: str) -> Path:
    """Where Ultralytics looks: the image path with its last /images/ made /labels/, .txt."""
    image = str(out / "images" / SUBSET / file_name)
    head, tail = image.rsplit("/images/", 1)
    return Path(f"{head}/labels/{tail.rsplit('.', 1)[0]}.txt")


def _lines(path: Path) -> list[np.ndarray]:
    return [np.array(line.split(), dtype=np.float64) for line in path.read_text(encoding="utf-8").splitlines()]


def test_boxes_are_the_coco_boxes_normalised(held_aside: Path, tmp_path: Path) -> None:
    data = _coco(held_aside)
    result = _export(held_aside, tmp_path / "out", segments=False)
    class_of = {category["id"]: position for position, category in enumerate(data["categories"])}
    crowd = kept = 0
    for image in data["images"]:
        written = _lines(_label_file(tmp_path / "out", image["file_name"]))
        expected = []
        for annotation in (a for a in data["annotations"] if a["image_id"] == image["id"]):
            if annotation["iscrowd"]:
                crowd += 1
                continue
            x, y, w, h = np.array(annotation["bbox"], dtype=np.float64)
            size = np.array([image["width"], image["height"]], dtype=np.float64)
            x1, y1 = np.clip(np.array([x, y]) / size, 0, 1)
            x2, y2 = np.clip(np.array([x + w, y + h]) / size, 0, 1)
            if round(x2 - x1, 6) <= 0 or round(y2 - y1, 6) <= 0:
                continue  # nothing left at six decimals
            expected.append([class_of[annotation["category_id"]], (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
        assert len(written) == len(expected), image["file_name"]
        if expected:
            np.testing.assert_allclose(np.array(written), np.array(expected), rtol=0, atol=5.1e-7)
        kept += len(expected)
        saved = tmp_path / "out" / "images" / SUBSET / image["file_name"]
        assert saved.read_bytes() == (held_aside / "images" / SUBSET / image["file_name"]).read_bytes()
    assert crowd > 0
    assert (result.images, result.objects, result.crowd_skipped, result.saved_images) == (
        len(data["images"]), kept, crowd, len(data["images"])
    )


def test_segments_are_the_coco_polygons_normalised(held_aside: Path, tmp_path: Path) -> None:
    data = _coco(held_aside)
    result = _export(held_aside, tmp_path / "out", segments=True)
    masks = crowd = disjoint = 0
    ious: list[float] = []
    for image in data["images"]:
        written = iter(_lines(_label_file(tmp_path / "out", image["file_name"])))
        width, height = image["width"], image["height"]
        for annotation in (a for a in data["annotations"] if a["image_id"] == image["id"]):
            if annotation["iscrowd"]:
                crowd += 1
                continue
            if not isinstance(annotation["segmentation"], list):
                masks += 1  # traced: the written outline draws the mask's pixels again
                line = next(written)
                points = line[1:].reshape(-1, 2) * [width, height]
                drawn = coco_mask.decode(coco_mask.frPyObjects([points.ravel().tolist()], height, width))[..., 0]
                rle = annotation["segmentation"]
                if isinstance(rle["counts"], list):
                    rle = coco_mask.frPyObjects(rle, height, width)
                original = coco_mask.decode(rle).astype(bool)
                both, either = np.logical_and(original, drawn).sum(), np.logical_or(original, drawn).sum()
                ious.append(both / either)
                continue
            parts = annotation["segmentation"]
            if round(annotation["bbox"][2] / width, 6) <= 0 or round(annotation["bbox"][3] / height, 6) <= 0:
                continue
            line = next(written)
            points = line[1:].reshape(-1, 2) * [width, height]
            if len(parts) == 1:
                np.testing.assert_allclose(points, np.array(parts[0]).reshape(-1, 2), rtol=0, atol=5.1e-7 * 640)
            else:
                # every point of every part, plus the way in and back out of each further part
                expected = np.concatenate([np.array(part).reshape(-1, 2) for part in parts])
                assert len(points) == len(expected) + 2 * (len(parts) - 1)
                assert all(np.abs(points - point).max(axis=1).min() < 5.1e-7 * 640 for point in expected)
                part_masks = coco_mask.decode(coco_mask.frPyObjects(parts, height, width))
                if part_masks.sum(axis=2).max() == 1:  # where parts overlap, the outline leaves a hole
                    disjoint += 1
                    joined = coco_mask.decode(coco_mask.frPyObjects([points.ravel().tolist()], height, width))[..., 0]
                    union = part_masks.any(axis=2)
                    both, either = np.logical_and(union, joined).sum(), np.logical_or(union, joined).sum()
                    assert both / either > 0.97, annotation["id"]
        assert next(written, None) is None
    assert masks > 0 and crowd > 0 and disjoint > 0
    assert (result.masks_traced, result.crowd_skipped) == (masks, crowd)
    assert min(ious) > 0.9 and np.mean(ious) > 0.97, (min(ious), np.mean(ious))


def test_data_yaml_is_what_ultralytics_reads(held_aside: Path, tmp_path: Path) -> None:
    _export(held_aside, tmp_path / "out", segments=False)
    document = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text(encoding="utf-8"))
    names = [category["name"] for category in _coco(held_aside)["categories"]]
    assert document == {
        "path": str((tmp_path / "out").resolve()), "val": f"images/{SUBSET}", "names": dict(enumerate(names)),
    }


def test_subsets_map_to_ultralytics_keys(tmp_path: Path) -> None:
    items = [ExportItem(subset, f"{subset}.jpg", 4, 2) for subset in ("train2014", "train2017", "Val", "extra")]
    result = write_yolo(tmp_path, ["a: b", "ü"], items, YoloOptions())
    document = yaml.safe_load((tmp_path / "data.yaml").read_text(encoding="utf-8"))
    assert document["train"] == ["images/train2014", "images/train2017"]
    assert document["val"] == "images/Val"
    assert document["extra"] == "images/extra"
    assert document["names"] == {0: "a: b", 1: "ü"}
    assert result.warnings == []
    assert (tmp_path / "labels" / "extra" / "extra.txt").read_text() == ""  # a background image
    assert [subset_key(s) for s in ("testdev2017", "validation", "default")] == ["test", "val", "default"]


def test_what_a_line_cannot_hold_is_counted(tmp_path: Path) -> None:
    item = ExportItem("train", "x.jpg", 10, 10, (
        ExportAnnotation(BBOX, "a", bbox=(-5, 2, 10, 4)),  # clipped to the image
        ExportAnnotation(BBOX, "a", bbox=(12, 2, 3, 3)),  # outside: nothing left
        ExportAnnotation("points", "a", bbox=(1, 1, 2, 2)),
        ExportAnnotation("caption", None),
        ExportAnnotation(MASK, "a", pixels=np.eye(10, dtype=bool)),
    ))
    result = write_yolo(tmp_path, ["a"], [item], YoloOptions())
    assert (tmp_path / "labels" / "train" / "x.txt").read_text() == (
        "0 0.250000 0.400000 0.500000 0.400000\n0 0.500000 0.500000 1.000000 1.000000\n"
    )
    assert (result.objects, result.clipped, result.empty_skipped) == (2, 2, 1)
    assert result.skipped == {"points": 1, "caption": 1}
    assert result.warnings == ["data.yaml has no 'val' key (no subset named so): Ultralytics needs both to train; "
                               "add them by hand"]


def test_with_segments_a_box_becomes_its_rectangle(tmp_path: Path) -> None:
    item = ExportItem("val", "x.jpg", 10, 5, (
        ExportAnnotation(BBOX, "a", bbox=(1, 1, 4, 2)),
        ExportAnnotation(POLYGON, "a", polygons=[[0, 0, 10, 0, 10, 5]]),
    ))
    write_yolo(tmp_path, ["a"], [item], YoloOptions(segments=True))
    assert (tmp_path / "labels" / "val" / "x.txt").read_text() == (
        "0 0.100000 0.200000 0.500000 0.200000 0.500000 0.600000 0.100000 0.600000\n"
        "0 0.000000 0.000000 1.000000 0.000000 1.000000 1.000000\n"
    )


def test_joined_parts_visit_every_point_of_every_part() -> None:
    first = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], dtype=float)
    second = np.array([[10, 10], [12, 10], [12, 12]], dtype=float)
    joined = join_parts([first, second])
    # enter the second part at its point nearest the first, walk it round and come back
    assert joined.tolist() == [[0, 0], [4, 0], [4, 4], [10, 10], [12, 10], [12, 12], [10, 10], [4, 4], [0, 4]]


def test_a_folder_named_images_in_a_file_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError, match=r"val/images/a.jpg: a folder named 'images' in a file name"):
        write_yolo(tmp_path, [], [ExportItem("val", "images/a.jpg", 1, 1)], YoloOptions())


def test_a_subset_named_like_a_reserved_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError, match=r"subset 'names': its name is a key Ultralytics reserves"):
        write_yolo(tmp_path, [], [ExportItem("names", "a.jpg", 1, 1)], YoloOptions())
