"""Datumaro's COCO export and import options, end to end on both databases (API and CLI),
on the generated edge-case folder of tests/edge_coco.py. Expected pixels come from
pycocotools on the input file; every output is imported again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from edge_coco import annotations_by_id, make_edge_dataset, pixels

from repo.errors import ConflictError, NotFoundError, OptionError
from repo.exporting import export_dataset
from repo.importing import import_dataset
from repo.project import Project

from helpers import DATA, Backend


@pytest.fixture
def edge(tmp_path: Path) -> Path:
    return make_edge_dataset(tmp_path / "edge")


@pytest.fixture
def project(backend: Backend, edge: Path) -> Project:
    project = backend.create()
    import_dataset(project, "coco", edge, name="edge")
    return project


def reimport(backend: Backend, out: Path, name: str) -> Any:
    """The output imports again, strictly (any bad record fails the import)."""
    with backend.create(name) as again:
        result = import_dataset(again, "coco", out)
        assert result.annotations > 0
        return result


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())


def has_key(value: Any, key: str) -> bool:
    if isinstance(value, dict):
        return key in value or any(has_key(v, key) for v in value.values())
    if isinstance(value, list):
        return any(has_key(v, key) for v in value)
    return False


def test_mask_mode_writes_rle_with_the_input_pixels(backend: Backend, project: Project, edge: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_dataset(project, "coco", out, segmentation_mode="mask")
    for subset in ("train", "val"):
        given = annotations_by_id(edge / "annotations" / f"instances_{subset}.json")
        written = annotations_by_id(out / "annotations" / f"instances_{subset}.json")
        assert written.keys() == given.keys()
        for ann_id, record in written.items():
            assert isinstance(record["segmentation"], dict)
            assert np.array_equal(pixels(record["segmentation"]), pixels(given[ann_id]["segmentation"]))
            assert (record["area"], record["bbox"], record["iscrowd"]) == (
                given[ann_id]["area"], given[ann_id]["bbox"], given[ann_id]["iscrowd"])
    reimport(backend, out, "again")


def test_rle_form_compressed_writes_strings_with_the_same_pixels(project: Project, edge: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_dataset(project, "coco_instances", out, segmentation_mode="mask", rle_form="compressed")
    given = annotations_by_id(edge / "annotations" / "instances_val.json")
    for ann_id, record in annotations_by_id(out / "annotations" / "instances_val.json").items():
        assert isinstance(record["segmentation"]["counts"], str)
        assert np.array_equal(pixels(record["segmentation"]), pixels(given[ann_id]["segmentation"]))


def test_polygons_mode_traces_masks_and_reports_iou(backend: Backend, project: Project, edge: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = export_dataset(project, "coco", out, segmentation_mode="polygons")
    given = annotations_by_id(edge / "annotations" / "instances_train.json")
    for ann_id, record in annotations_by_id(out / "annotations" / "instances_train.json").items():
        assert isinstance(record["segmentation"], list) and record["segmentation"]
        assert iou(pixels(record["segmentation"]), pixels(given[ann_id]["segmentation"])) >= 0.8
        assert record["iscrowd"] == given[ann_id]["iscrowd"]
    assert result.iou_line is not None and "8 masks" in result.iou_line  # 2 masks x 4 images
    reimport(backend, out, "again")


def test_guess_mode_crowd_as_mask_others_as_polygons(project: Project, edge: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_dataset(project, "coco_instances", out, segmentation_mode="guess")
    for record in annotations_by_id(out / "annotations" / "instances_val.json").values():
        assert isinstance(record["segmentation"], dict) == (record["iscrowd"] == 1)


def test_crop_covered_removes_overlaps_and_reports_the_emptied(backend: Backend, project: Project, edge: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = export_dataset(project, "coco_instances", out, crop_covered=True)
    given = annotations_by_id(edge / "annotations" / "instances_train.json")
    written = annotations_by_id(out / "annotations" / "instances_train.json")
    for image_id in (1, 2):
        ids = [i for i in given if given[i]["image_id"] == image_id]
        kept = [i for i in ids if i in written and written[i]["iscrowd"] == 0]
        drawn = {i: pixels(written[i]["segmentation"]) for i in kept}
        for a in kept:
            for b in kept:
                assert a == b or not np.logical_and(drawn[a], drawn[b]).any()
        # the z_order 1 square keeps all its pixels; the z_order -1 one, covered by the blob, is gone
        assert np.array_equal(drawn[ids[1]], pixels(given[ids[1]]["segmentation"]))
        assert ids[4] not in written
        assert written[ids[0]]["area"] == float(drawn[ids[0]].sum())
    assert len(result.emptied) == 4 and "annotation id 104" in result.emptied[0]
    reimport(backend, out, "again")


def test_allow_attributes_false_writes_no_attributes(backend: Backend, project: Project, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_dataset(project, "coco", out, allow_attributes=False)
    for path in (out / "annotations").glob("*.json"):
        assert not has_key(json.loads(path.read_text()), "attributes")
    reimport(backend, out, "again")


def test_tasks_subsets_and_sources_select_the_files(project: Project, edge: Path, tmp_path: Path) -> None:
    export_dataset(project, "coco", tmp_path / "two", tasks="captions,instances", subsets=["val"])
    assert sorted(p.name for p in (tmp_path / "two" / "annotations").iterdir()) == ["captions_val.json", "instances_val.json"]
    export_dataset(project, "coco", tmp_path / "src", sources="edge", tasks=("captions",))
    assert sorted(p.name for p in (tmp_path / "src" / "annotations").iterdir()) == ["captions_train.json", "captions_val.json"]
    with pytest.raises(NotFoundError, match="no source 'other'.*known: edge"):
        export_dataset(project, "coco", tmp_path / "x", sources="other")
    with pytest.raises(OptionError, match="'panoptics'.*instances, person_keypoints"):
        export_dataset(project, "coco", tmp_path / "y", tasks="panoptics")


def test_an_export_that_writes_nothing_fails(backend: Backend, project: Project, tmp_path: Path) -> None:
    labels = "cannot export labels: the project holds no labels files, and no other COCO task holds image labels"
    with pytest.raises(NotFoundError, match=labels):
        export_dataset(project, "coco_labels", tmp_path / "out")
    with pytest.raises(NotFoundError, match=labels):
        export_dataset(project, "coco", tmp_path / "out2", tasks="labels,instances")
    with backend.create("empty") as empty, pytest.raises(NotFoundError, match="nothing to export as coco: the project holds no instances or"):
        export_dataset(empty, "coco", tmp_path / "out3")
    assert not (tmp_path / "out" / "annotations").exists() and not (tmp_path / "out2" / "annotations").exists()


def test_save_dataset_meta_writes_the_labels(backend: Backend, project: Project, edge: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_dataset(project, "coco_instances", out, save_dataset_meta=True, save_images=True)
    categories = json.loads((edge / "annotations" / "instances_val.json").read_text())["categories"]
    by_id = {category["id"]: category["name"] for category in categories}
    labels = json.loads((out / "dataset_meta.json").read_text())["labels"]
    assert {i + 1: label for i, label in enumerate(labels) if i + 1 in by_id} == by_id
    reimport(backend, out, "again")  # the meta agrees with the categories, so the import reads it


def test_cli_options_after_the_double_dash(cli: Any, backend: Backend, edge: Path, tmp_path: Path) -> None:
    project = backend.create_args()
    cli("create", *project)
    cli("import", "-p", project[1], "-f", "coco", str(edge))
    out = tmp_path / "out"
    said = cli.text("export", "-p", project[1], "-f", "coco", "-o", out, "--",
                    "--tasks", "instances", "--subsets", "train", "--segmentation-mode", "polygons",
                    "--allow-attributes", "false", "--reindex", "1", "--crop-covered")
    assert "IoU with the masks" in said
    written = json.loads((out / "annotations" / "instances_train.json").read_text())
    assert [a["id"] for a in written["annotations"]] == list(range(1, 9))
    assert not has_key(written, "attributes")
    error = cli.text("export", "-p", project[1], "-f", "coco", "-o", tmp_path / "o2", "--", "--tasks", "nope", code=2)
    assert "expected names from instances, person_keypoints, captions" in error and "Traceback" not in error
    error = cli.text("export", "-p", project[1], "-f", "coco_labels", "-o", tmp_path / "o3", code=1)
    assert error.strip().splitlines() == [
        "Error: cannot export labels: the project holds no labels files, and no other COCO task holds image labels "
        "(it holds captions, instances)"]


def test_import_subset_and_keep_original_category_ids(backend: Backend, edge: Path, tmp_path: Path) -> None:
    with backend.create() as project:
        for subset, name in (("train", "first.json"), ("val", "second.json")):
            single = tmp_path / name
            single.write_text((edge / "annotations" / f"instances_{subset}.json").read_text())
            import_dataset(project, "coco_instances", single, name=subset, subset=subset, keep_original_category_ids=True)
        export_dataset(project, "coco_instances", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "annotations").iterdir()) == [
        "instances_train.json", "instances_val.json"]


def test_masks_match_what_datumaro_writes_in_mask_mode(project: Project, edge: Path, tmp_path: Path) -> None:
    """Datumaro 1.13.12 exporting the same folder with segmentation_mode=mask: same pixels
    per annotation id (Datumaro recomputes area and bbox; pixels are what must agree)."""
    import datumaro
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    export_dataset(project, "coco_instances", ours, segmentation_mode="mask")
    dataset = datumaro.Dataset.import_from(str(edge), "coco_instances")
    dataset.export(str(theirs), "coco_instances", segmentation_mode="mask")
    for subset in ("train", "val"):
        mine = annotations_by_id(ours / "annotations" / f"instances_{subset}.json")
        reference = annotations_by_id(theirs / "annotations" / f"instances_{subset}.json")
        assert mine.keys() == reference.keys()
        for ann_id in mine:
            assert np.array_equal(pixels(mine[ann_id]["segmentation"]), pixels(reference[ann_id]["segmentation"]))


# -- --save-images with --merge-images and --image-ext ------------------------------------------

def saved_pixels_match(out: Path, edge: Path, merged: bool) -> int:
    """Every image each JSON names is where the JSON says, with the input's pixels (Pillow)."""
    checked = 0
    for subset in ("train", "val"):
        given = {image["id"]: image for image in json.loads((edge / "annotations" / f"instances_{subset}.json").read_text())["images"]}
        written = json.loads((out / "annotations" / f"instances_{subset}.json").read_text())["images"]
        for image in written:
            folder = out / "images" if merged else out / "images" / subset
            with Image.open(folder / image["file_name"]) as mine, Image.open(edge / "images" / subset / given[image["id"]]["file_name"]) as theirs:
                assert np.array_equal(np.asarray(mine), np.asarray(theirs))
            checked += 1
    return checked


def test_image_ext_reencodes_and_renames_everywhere(backend: Backend, project: Project, edge: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = export_dataset(project, "coco", out, save_images=True, image_ext="bmp")
    assert saved_pixels_match(out, edge, merged=False) == 4
    for path in (out / "annotations").glob("*.json"):
        assert all(image["file_name"].endswith(".bmp") for image in json.loads(path.read_text())["images"])
    assert result.saved_images == 4 and result.image_losses == []
    assert reimport(backend, out, "again").missing_images == 0


def test_merge_images_puts_every_subset_in_one_folder(backend: Backend, project: Project, edge: Path, tmp_path: Path) -> None:
    # the two subsets use the same file names with different pixels: refused, nothing written
    with pytest.raises(ConflictError, match="images/sub/a.png would hold two different images, train/sub/a.png and val/sub/a.png"):
        export_dataset(project, "coco", tmp_path / "clash", save_images=True, merge_images=True)
    assert not (tmp_path / "clash" / "annotations").exists()
    out = tmp_path / "out"
    export_dataset(project, "coco", out, save_images=True, merge_images=True, subsets="val", image_ext=".png")
    assert sorted(p.relative_to(out / "images").as_posix() for p in (out / "images").rglob("*.png")) == ["b.png", "sub/a.png"]
    given = {i["id"]: i for i in json.loads((edge / "annotations" / "instances_val.json").read_text())["images"]}
    for image in json.loads((out / "annotations" / "instances_val.json").read_text())["images"]:
        with Image.open(out / "images" / image["file_name"]) as mine, Image.open(edge / "images" / "val" / given[image["id"]]["file_name"]) as theirs:
            assert np.array_equal(np.asarray(mine), np.asarray(theirs))
    assert reimport(backend, out, "again").missing_images == 0  # found in images/, as Datumaro looks
    with pytest.raises(OptionError, match="--merge-images needs --save-images"):
        export_dataset(project, "coco", tmp_path / "no", merge_images=True)


def test_image_ext_to_jpeg_reports_the_loss(project: Project, tmp_path: Path) -> None:
    result = export_dataset(project, "coco_captions", tmp_path / "out", save_images=True, image_ext=".jpg")
    assert len(result.image_losses) == 4 and all("JPEG is lossy" in loss for loss in result.image_losses)


# -- cross-task export ---------------------------------------------------------------------------

PANOPTIC = DATA / "panopticapi_sample" / "coco"


def png_segments(task: str) -> dict[int, list[tuple[int, np.ndarray]]]:
    """Image id -> (category id, pixels) of its thing (or stuff) segments, from the PNGs (Pillow)."""
    document = json.loads((PANOPTIC / "annotations" / "panoptic_val2017.json").read_text())
    isthing = {category["id"]: category["isthing"] == 1 for category in document["categories"]}
    found: dict[int, list[tuple[int, np.ndarray]]] = {}
    for record in document["annotations"]:
        with Image.open(PANOPTIC / "annotations" / "panoptic_val2017" / record["file_name"]) as png:
            rgb = np.asarray(png.convert("RGB")).astype(np.uint32)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        found[record["image_id"]] = [
            (segment["category_id"], ids == segment["id"]) for segment in record["segments_info"]
            if isthing[segment["category_id"]] == (task == "instances")
        ]
    return found


@pytest.mark.parametrize("task", ["instances", "stuff"])
def test_panoptic_only_exports_as_instances_and_stuff(backend: Backend, task: str, tmp_path: Path) -> None:
    from pycocotools import mask as coco_mask

    with backend.create() as project:
        import_dataset(project, "coco_panoptic", PANOPTIC)
        result = export_dataset(project, f"coco_{task}", tmp_path / "out")
    assert result.derived == [f"{task}_val2017.json derived from panoptic_val2017.json"]
    written = json.loads((tmp_path / "out" / "annotations" / f"{task}_val2017.json").read_text())
    expected = png_segments(task)
    assert len(written["annotations"]) == sum(len(v) for v in expected.values()) == result.annotations > 0
    by_image: dict[int, list[dict[str, Any]]] = {}
    for record in written["annotations"]:
        by_image.setdefault(record["image_id"], []).append(record)
    for image_id, segments in expected.items():
        assert len(by_image.get(image_id, [])) == len(segments)
        for (category_id, mask), record in zip(segments, by_image.get(image_id, [])):
            rle = coco_mask.frPyObjects(record["segmentation"], *record["segmentation"]["size"])
            assert record["category_id"] == category_id
            assert np.array_equal(coco_mask.decode(rle).astype(bool), mask)
            assert record["area"] == int(mask.sum())
            assert record["bbox"] == coco_mask.toBbox(coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))).tolist()
    names = {c["id"] for c in written["categories"]}
    assert all(record["category_id"] in names for record in written["annotations"])
    reimport(backend, tmp_path / "out", "again")


def test_convert_panoptic_to_instances_on_the_command_line(cli: Any, tmp_path: Path) -> None:
    said = cli.text("convert", "-if", "coco_panoptic", "-i", PANOPTIC, "-f", "coco_instances", "-o", tmp_path / "out")
    written = json.loads((tmp_path / "out" / "annotations" / "instances_val2017.json").read_text())
    assert f"converted 2 images, {len(written['annotations'])} annotations" in said and written["annotations"]
    assert "instances_val2017.json derived from panoptic_val2017.json" in said


def test_image_info_and_instances_from_other_tasks(backend: Backend, tmp_path: Path) -> None:
    """image_info from the images of instances; instances from person_keypoints records
    (Datumaro's sample), keypoints dropped, everything else as it was."""
    sample = DATA / "datumaro_coco" / "coco_person_keypoints"
    given = json.loads((sample / "annotations" / "person_keypoints_val.json").read_text())
    with backend.create() as project:
        import_dataset(project, "coco_person_keypoints", sample)
        result = export_dataset(project, "coco", tmp_path / "out", tasks="instances,image_info", subsets="val")
    files = {p.name: json.loads(p.read_text()) for p in (tmp_path / "out" / "annotations").glob("*.json")}
    assert len(files) == 2 and len(result.derived) == 2
    instances = next(doc for name, doc in files.items() if name.startswith("instances_"))
    info = next(doc for name, doc in files.items() if name.startswith("image_info_"))
    assert info["images"] == instances["images"] == given["images"] and info["annotations"] == []
    expected = [{k: v for k, v in a.items() if k not in ("keypoints", "num_keypoints")} for a in given["annotations"]]
    assert instances["annotations"] == expected
    assert instances["categories"] == [{k: v for k, v in c.items() if k not in ("keypoints", "skeleton")} for c in given["categories"]]
    reimport(backend, tmp_path / "out", "again")


def test_instances_export_as_panoptic_without_overlaps(backend: Backend, project: Project, edge: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = export_dataset(project, "coco_panoptic", out, subsets="train")
    assert result.derived == ["panoptic_train.json derived from instances_train.json"]
    given = annotations_by_id(edge / "annotations" / "instances_train.json")
    document = json.loads((out / "annotations" / "panoptic_train.json").read_text())
    assert {c["id"]: c["isthing"] for c in document["categories"]} == {1: 1, 3: 1}
    for record in document["annotations"]:
        with Image.open(out / "annotations" / "panoptic_train" / record["file_name"]) as png:
            rgb = np.asarray(png.convert("RGB")).astype(np.uint32)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        drawn = [ids == segment["id"] for segment in record["segments_info"]]
        mine = [pixels(a["segmentation"]) for a in given.values() if a["image_id"] == record["image_id"]]
        assert np.array_equal(ids > 0, np.logical_or.reduce(mine))  # every annotated pixel, once
        assert any(np.array_equal(mask, mine[1]) for mask in drawn)  # the z_order 1 square keeps all
        assert [segment["area"] for segment in record["segments_info"]] == [int(mask.sum()) for mask in drawn]
    assert len(result.left_out) == 2 and "annotation id 104 (image id 1) lost every pixel" in result.left_out[0]
    with backend.create("again") as again:
        assert import_dataset(again, "coco_panoptic", out).annotations == result.annotations


def test_a_mask_that_cannot_be_decoded_is_an_input_error_naming_file_and_annotation() -> None:
    """Stored data is validated on import; should a bad RLE reach the export anyway, the
    pixel error becomes a one-line InputError naming the file and the annotation."""
    from repo._internal.compose import Placement
    from repo.errors import InputError
    from repo.formats.coco_options import Rewrite

    rewrite = Rewrite.of({"segmentation_mode": "polygons"})
    assert rewrite is not None
    row = {"coco_id": 7, "rle": b"\x01bad", "rle_form": None, "polygons": None, "iscrowd": 0}
    with pytest.raises(InputError, match=r"^instances_val.json: annotation id 7 \(image id 3\): field 'segmentation': counts string"):
        list(rewrite.rows([(row, Placement(3, 4, 4))], "instances_val.json"))


def test_two_images_that_would_share_a_panoptic_png_are_refused(backend: Backend, tmp_path: Path) -> None:
    from repo.errors import ConflictError as Conflict

    document = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 4, "width": 4}, {"id": 2, "file_name": "a.png", "height": 4, "width": 4}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [[0, 0, 3, 0, 3, 3]]}],
    }
    (tmp_path / "instances_default.json").write_text(json.dumps(document))
    with backend.create() as project:
        import_dataset(project, "coco_instances", tmp_path / "instances_default.json")
        with pytest.raises(Conflict, match="images 'a.jpg' and 'a.png' would share the PNG panoptic_default/a.png"):
            export_dataset(project, "coco_panoptic", tmp_path / "out")


def test_cli_image_options(cli: Any, backend: Backend, edge: Path, tmp_path: Path) -> None:
    project = backend.create_args()
    cli("create", *project)
    cli("import", "-p", project[1], "-f", "coco", str(edge))
    out = tmp_path / "out"
    said = cli.text("export", "-p", project[1], "-f", "coco", "-o", out, "--save-images", "--merge-images",
                    "--image-ext", "png", "--", "--subsets", "val", "--save-dataset-meta")
    assert "saved 2 images" in said
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "annotations/captions_val.json", "annotations/instances_val.json", "dataset_meta.json",
        "images/b.png", "images/sub/a.png",
    ]
    error = cli.text("export", "-p", project[1], "-f", "coco", "-o", tmp_path / "clash", "--save-images",
                     "--merge-images", code=1)
    assert "would hold two different images" in error and not (tmp_path / "clash" / "annotations").exists()


def test_datumaro_reads_what_the_options_write(project: Project, edge: Path, tmp_path: Path) -> None:
    """Datumaro 1.13.12 imports an export made with several options at once: polygons,
    no attributes, PNG images in one folder... with dataset_meta.json naming the labels."""
    from collections import Counter

    from datumaro.components.annotation import AnnotationType
    from datumaro.components.dataset import Dataset

    out = tmp_path / "out"
    export_dataset(project, "coco_instances", out, subsets="val", segmentation_mode="polygons", allow_attributes=False,
                   save_images=True, image_ext=".bmp", save_dataset_meta=True)
    dataset = Dataset.import_from(str(out), "coco_instances")
    names = [label.name for label in dataset.categories()[AnnotationType.label]]
    seen = Counter(
        names[annotation.label] for item in dataset for annotation in item.annotations
        if annotation.type == AnnotationType.polygon
    )
    given = json.loads((edge / "annotations" / "instances_val.json").read_text())
    category = {c["id"]: c["name"] for c in given["categories"]}
    written = json.loads((out / "annotations" / "instances_val.json").read_text())
    assert seen == Counter(category[a["category_id"]] for a in written["annotations"] for _ in a["segmentation"])
    assert all(item.media.data.shape[:2] == (24, 32) for item in dataset)
