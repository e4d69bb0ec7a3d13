"""The VOC writer, on real COCO panoptic ground truth and on small cases built for one rule.

The input is the panopticapi sample's segments in their instances form (compressed RLE, read
with plain `json`); the oracles are independent of it: the panoptic PNG decoded with Pillow
and numpy (every pixel's label), the JSON's boxes, Datumaro 1.13.12's own VOC output of the same
sample (tests/data/datumaro_voc_from_panoptic), and Datumaro reading our folder as a client.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from datumaro.components.annotation import AnnotationType
from datumaro.components.dataset import Dataset
from datumaro.plugins.data_formats.voc.format import generate_colormap
from PIL import Image

from coco_items import coco_items
from helpers import DATA
from helpers import id_map
from repo.errors import ConflictError, UnsupportedError
from repo.formats.exportable import BBOX, MASK, ExportAnnotation, ExportItem
from repo.formats.voc import VocOptions, voc_colormap, write_voc

SAMPLE = DATA / "panopticapi_sample" / "coco"
PEER = DATA / "datumaro_voc_from_panoptic"
PANOPTIC = json.loads((SAMPLE / "annotations" / "panoptic_val2017.json").read_text(encoding="utf-8"))
DATUMARO_COLOURS = np.array(list(generate_colormap(256).values()), dtype=np.uint8)


@pytest.fixture(scope="module")
def sample_voc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("voc")
    instances = SAMPLE / "annotations" / "instances_val2017.json"
    labels, items = coco_items(instances, SAMPLE / "images" / "val2017", "val2017")
    result = write_voc(out, labels, items, VocOptions(save_images=True))
    assert (result.items, result.objects, result.regions, result.saved_images) == (2, 50, 50, 2)
    return out


def _peer_labels() -> list[str]:
    lines = (PEER / "labelmap.txt").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split(":")[0] for line in lines]


def _ground_truth(record: dict) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's labelmap index and object number (segment k of segments_info is object k),
    from the panoptic PNG alone."""
    ids = id_map(SAMPLE / "annotations" / "panoptic_val2017" / record["file_name"])
    names = {category["id"]: category["name"] for category in PANOPTIC["categories"]}
    labels = _peer_labels()
    classes = np.zeros(ids.shape, dtype=np.int64)
    objects = np.zeros(ids.shape, dtype=np.int64)
    for number, segment in enumerate(record["segments_info"], start=1):
        classes[ids == segment["id"]] = labels.index(names[segment["category_id"]])
        objects[ids == segment["id"]] = number
    return classes, objects


def _stem(record: dict) -> str:
    return Path(record["file_name"]).stem


def test_the_colour_map_is_vocs() -> None:
    colours = voc_colormap()
    assert np.array_equal(colours, DATUMARO_COLOURS)
    assert colours[15].tolist() == [192, 128, 128]  # person in VOC 2012


@pytest.mark.parametrize("record", PANOPTIC["annotations"], ids=_stem)
def test_every_pixel_has_the_panoptic_label(sample_voc: Path, record: dict) -> None:
    classes, objects = _ground_truth(record)
    for folder, expected in (("SegmentationClass", classes), ("SegmentationObject", objects)):
        with Image.open(sample_voc / folder / f"{_stem(record)}.png") as png:
            assert png.mode == "P"
            palette = np.array(png.getpalette(), dtype=np.uint8).reshape(-1, 3)
            indices = np.asarray(png)
        assert np.array_equal(palette, DATUMARO_COLOURS)
        assert np.array_equal(indices, expected), folder


@pytest.mark.parametrize("record", PANOPTIC["annotations"], ids=_stem)
def test_pngs_have_the_colours_datumaro_writes(sample_voc: Path, record: dict) -> None:
    for folder in ("SegmentationClass", "SegmentationObject"):
        name = f"{_stem(record)}.png"
        with Image.open(sample_voc / folder / name) as ours, Image.open(PEER / folder / name) as theirs:
            assert np.array_equal(np.asarray(ours.convert("RGB")), np.asarray(theirs.convert("RGB"))), folder


def test_layout_and_lists_match_datumaros(sample_voc: Path) -> None:
    assert (sample_voc / "labelmap.txt").read_bytes() == (PEER / "labelmap.txt").read_bytes()
    for task in ("Main", "Segmentation"):
        ours = (sample_voc / "ImageSets" / task / "val2017.txt").read_text(encoding="utf-8").splitlines()
        theirs = (PEER / "ImageSets" / task / "val2017.txt").read_text(encoding="utf-8").splitlines()
        assert ours == [_stem(record) for record in PANOPTIC["annotations"]]
        assert sorted(ours) == sorted(theirs)  # Datumaro lists items in reverse order
    for image in PANOPTIC["images"]:
        saved = sample_voc / "JPEGImages" / image["file_name"]
        assert saved.read_bytes() == (SAMPLE / "images" / "val2017" / image["file_name"]).read_bytes()


@pytest.mark.parametrize("record", PANOPTIC["annotations"], ids=_stem)
def test_xml_lists_each_segment_with_its_box(sample_voc: Path, record: dict) -> None:
    image = next(image for image in PANOPTIC["images"] if image["id"] == record["image_id"])
    root = ET.parse(sample_voc / "Annotations" / f"{_stem(record)}.xml").getroot()
    assert root.findtext("filename") == image["file_name"]
    assert [root.findtext(f"size/{key}") for key in ("width", "height", "depth")] == [
        str(image["width"]), str(image["height"]), "3"
    ]
    assert root.findtext("segmented") == "1"
    names = {category["id"]: category["name"] for category in PANOPTIC["categories"]}
    objects = root.findall("object")
    assert len(objects) == len(record["segments_info"])
    for obj, segment in zip(objects, record["segments_info"]):
        x, y, w, h = segment["bbox"]
        assert obj.findtext("name") == names[segment["category_id"]]
        box = [float(obj.findtext(f"bndbox/{key}")) for key in ("xmin", "ymin", "xmax", "ymax")]
        assert box == [x, y, x + w, y + h]
        assert obj.findtext("attributes/attribute/value") == str(bool(segment["iscrowd"]))


def test_datumaro_reads_the_folder(sample_voc: Path) -> None:
    dataset = Dataset.import_from(str(sample_voc), "voc")
    labels = dataset.categories()[AnnotationType.label]
    assert [label.name for label in labels] == _peer_labels()
    items = {item.id: item for item in dataset}
    assert sorted(items) == sorted(_stem(record) for record in PANOPTIC["annotations"])
    for record in PANOPTIC["annotations"]:
        item = items[_stem(record)]
        image = next(image for image in PANOPTIC["images"] if image["id"] == record["image_id"])
        assert item.subset == "val2017"
        assert Path(item.media.path) == sample_voc / "JPEGImages" / image["file_name"]
        assert item.media.size == (image["height"], image["width"])
        classes, _ = _ground_truth(record)
        masks = [a for a in item.annotations if a.type == AnnotationType.mask]
        boxes = [a for a in item.annotations if a.type == AnnotationType.bbox]
        assert len(masks) == len(boxes) == len(record["segments_info"])
        read = np.zeros(classes.shape, dtype=np.int64)
        for mask in masks:
            read[mask.image] = mask.label
        assert np.array_equal(read, classes)


# -- rules, on small items -------------------------------------------------------------------

def _pixels(row: list[int]) -> np.ndarray:
    return np.array([row], dtype=bool)


def _indices(path: Path) -> list[int]:
    with Image.open(path) as png:
        return np.asarray(png).ravel().tolist()


def test_later_regions_are_painted_over_earlier_ones_and_boxes_keep_their_object_number(tmp_path: Path) -> None:
    item = ExportItem("train", "one.png", 5, 1, (
        ExportAnnotation(MASK, "a", pixels=_pixels([1, 1, 1, 0, 0])),
        ExportAnnotation(BBOX, "b", bbox=(0, 0, 2, 1)),
        ExportAnnotation(MASK, "b", pixels=_pixels([0, 0, 1, 1, 0]), iscrowd=True),
    ))
    result = write_voc(tmp_path, ["a", "b"], [item], VocOptions())
    assert (result.objects, result.regions) == (3, 2)
    assert _indices(tmp_path / "SegmentationClass" / "one.png") == [1, 1, 2, 2, 0]
    assert _indices(tmp_path / "SegmentationObject" / "one.png") == [1, 1, 3, 3, 0]
    objects = ET.parse(tmp_path / "Annotations" / "one.xml").getroot().findall("object")
    assert [obj.findtext("name") for obj in objects] == ["a", "b", "b"]
    # a region without a box gets the box of its pixels
    assert [objects[0].findtext(f"bndbox/{k}") for k in ("xmin", "ymin", "xmax", "ymax")] == ["0", "0", "3", "1"]
    assert [obj.findtext("attributes/attribute/value") for obj in objects] == ["False", "False", "True"]


def test_sub_folders_are_kept_in_ids_and_items_without_regions_have_no_pngs(tmp_path: Path) -> None:
    picture = tmp_path / "picture.png"
    Image.new("RGB", (5, 1)).save(picture)
    items = [
        ExportItem("val", "city/street/x.png", 5, 1, (ExportAnnotation(MASK, "a", pixels=_pixels([1, 0, 0, 0, 0])),),
                   picture),
        ExportItem("val", "empty.jpg", 5, 1, (ExportAnnotation("caption", None),), tmp_path / "missing.jpg"),
    ]
    out = tmp_path / "out"
    out.mkdir()
    result = write_voc(out, ["a"], items, VocOptions(save_images=True))
    assert result.skipped == {"caption": 1}
    assert result.unavailable_images == ["val/empty.jpg"]
    assert (out / "JPEGImages" / "city" / "street" / "x.png").read_bytes() == picture.read_bytes()
    assert (out / "SegmentationClass" / "city" / "street" / "x.png").is_file()
    assert not (out / "SegmentationClass" / "empty.png").exists()
    assert (out / "ImageSets" / "Main" / "val.txt").read_text() == "city/street/x\nempty\n"
    assert (out / "ImageSets" / "Segmentation" / "val.txt").read_text() == "city/street/x\n"
    dataset = Dataset.import_from(str(out), "voc")
    assert sorted(item.id for item in dataset) == ["city/street/x", "empty"]


def test_a_label_named_background_comes_first(tmp_path: Path) -> None:
    item = ExportItem("s", "x.jpg", 2, 1, (ExportAnnotation(MASK, "background", pixels=_pixels([1, 0])),
                                          ExportAnnotation(MASK, "cat", pixels=_pixels([0, 1]))))
    write_voc(tmp_path, ["cat", "background"], [item], VocOptions())
    assert (tmp_path / "labelmap.txt").read_text().splitlines()[1:] == ["background:::", "cat:::"]
    assert _indices(tmp_path / "SegmentationClass" / "x.png") == [0, 1]


def test_two_items_with_one_id_are_refused(tmp_path: Path) -> None:
    items = [ExportItem("train", "a.jpg", 1, 1), ExportItem("val", "a.png", 1, 1)]
    message = r"'a.jpg' \(subset train\) and 'a.png' \(subset val\) both become VOC item 'a'"
    with pytest.raises(ConflictError, match=message):
        write_voc(tmp_path, [], items, VocOptions())


@pytest.mark.parametrize(("labels", "message"), [
    (["a:b"], r"label 'a:b' cannot be written to labelmap.txt: ':' and line breaks separate its fields"),
    (["#x"], r"label '#x' cannot be written to labelmap.txt: a line starting with '#' is a comment"),
    ([f"l{n}" for n in range(255)], r"255 labels: a VOC class PNG holds at most 254 besides background"),
])
def test_labels_voc_cannot_hold_are_refused(tmp_path: Path, labels: list[str], message: str) -> None:
    with pytest.raises(UnsupportedError, match=message):
        write_voc(tmp_path, labels, [], VocOptions())


def test_an_image_with_more_objects_than_a_png_holds_is_refused(tmp_path: Path) -> None:
    pixel = _pixels([1])
    item = ExportItem("s", "crowded.jpg", 1, 1, tuple(ExportAnnotation(MASK, "a", pixels=pixel) for _ in range(255)))
    with pytest.raises(UnsupportedError, match=r"s/crowded.jpg: more than 254 objects"):
        write_voc(tmp_path, ["a"], [item], VocOptions())


def test_a_subset_name_with_an_underscore_is_written_with_a_warning(tmp_path: Path) -> None:
    result = write_voc(tmp_path, [], [ExportItem("val_hard", "a.jpg", 1, 1)], VocOptions())
    assert (tmp_path / "ImageSets" / "Main" / "val_hard.txt").read_text() == "a\n"
    assert result.warnings == [
        "subset 'val_hard': VOC readers take ImageSets/Main/<label>_<subset>.txt for class lists, "
        "so Datumaro skips a subset list whose name holds '_'"
    ]
