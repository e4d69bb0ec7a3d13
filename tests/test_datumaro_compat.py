"""Datumaro reading our exported files per task sees the same items, annotations and labels
as when it reads the originals.

For each input folder: `dsrepo create`, `import -f coco`, `export -f coco --save-images` through
the CLI (Datumaro insists on an `images/` folder beside `annotations/`); then
Datumaro 1.13.12 reads the original folder and the export with each COCO task format found there
(`coco_instances`, `coco_person_keypoints`, `coco_captions`, `coco_labels`, `coco_image_info`,
`coco_panoptic`, `coco_stuff`). Both readings are reduced to plain, order-free values (Datumaro
reverses the order of images and annotations) and must be equal:

- label categories: names (with parent and attributes) in order; keypoint names and skeletons;
- items: id, subset, image size, image path below the dataset folder and the digest of the file
  there, item attributes (COCO id);
- annotations per item, as a multiset: class, type, id, group, object id, z-order, label *name*,
  attributes (JSON-typed: 1, 1.0 and true differ), and geometry: bbox/polygon points, keypoints
  with visibility, caption text, mask pixels (`ann.image`, bit-packed with their shape).

Datumaro's own `EqualityComparator` must find no difference either. It is the weaker check (it
ignores the image size, compares polygons by area and masks by pixels alone, without id or
attributes), so it runs in addition, not instead.

Where Datumaro cannot read the ORIGINAL file, there is nothing to compare: it must then fail on
the export in the same way (same chain of exception types and messages, folder names aside), and
the test names those cases (and the root exception) explicitly, so a Datumaro failure nobody
expected still fails the test.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datumaro.components.annotation import AnnotationType
from datumaro.components.comparator import EqualityComparator
from datumaro.components.dataset import Dataset
from PIL import Image

from gen_coco import generate
from helpers import DATA

TASKS = ("instances", "person_keypoints", "captions", "labels", "image_info", "panoptic", "stuff")


# ------------------------------------------------------------------------------------ inputs

@dataclass(frozen=True)
class Case:
    """One input: how to lay out the folder Datumaro reads, and what `dsrepo import` gets."""

    name: str
    prepare: Callable[[Path], tuple[Path, list[str]]]  # scratch dir -> (Datumaro's folder, import args)
    # task -> the exception class (by name) at the root of Datumaro's failure to read the original
    datumaro_rejects: dict[str, str] = field(default_factory=dict)


def _folder(relative: str) -> Callable[[Path], tuple[Path, list[str]]]:
    def prepare(scratch: Path) -> tuple[Path, list[str]]:
        source = (DATA / relative).resolve()
        return source, [str(source)]

    return prepare


def _panoptic_val(scratch: Path) -> tuple[Path, list[str]]:
    """coco_panoptic's train PNG is broken on purpose (dsrepo refuses it): only val is imported,
    and Datumaro reads a copy of the folder that holds only the val files."""
    source = (DATA / "datumaro_coco" / "coco_panoptic").resolve()
    original = scratch / "original"
    (original / "annotations").mkdir(parents=True)
    shutil.copy2(source / "annotations" / "panoptic_val.json", original / "annotations")
    shutil.copytree(source / "annotations" / "panoptic_val", original / "annotations" / "panoptic_val")
    shutil.copytree(source / "images" / "val", original / "images" / "val")
    return original, ["-r", "annotations/panoptic_val.json", str(source)]


def _generated(edge_cases: bool) -> Callable[[Path], tuple[Path, list[str]]]:
    def prepare(scratch: Path) -> tuple[Path, list[str]]:
        original = scratch / "original"
        generate(original, images=20, seed=3, edge_cases=edge_cases, write_images=True)
        return original, [str(original)]

    return prepare


# Datumaro 1.13.12 cannot read some valid COCO files:
# - image_info without an "annotations" key (as COCO's test-dev files): MissingFieldError;
# - a labels annotation with category_id 0: Datumaro maps id 0 to "no label" (None), which its
#   Label annotation rejects (TypeError from int(None)). Instances/stuff/keypoints accept label None.
_NO_ANNOTATIONS_KEY = {"image_info": "MissingFieldError"}
_LABEL_ZERO = {"labels": "TypeError"}

CASES = [
    Case("coco", _folder("datumaro_coco/coco")),
    Case("coco_captions", _folder("datumaro_coco/coco_captions")),
    Case("coco_image_info", _folder("datumaro_coco/coco_image_info")),
    Case("coco_instances", _folder("datumaro_coco/coco_instances")),
    Case("coco_labels", _folder("datumaro_coco/coco_labels")),
    Case("coco_person_keypoints", _folder("datumaro_coco/coco_person_keypoints")),
    Case("coco_stuff", _folder("datumaro_coco/coco_stuff")),
    Case("coco_panoptic-val", _panoptic_val),
    Case("panopticapi", _folder("panopticapi_sample/coco"), _NO_ANNOTATIONS_KEY),
    Case("generated", _generated(edge_cases=False), _NO_ANNOTATIONS_KEY),
    Case("generated-edge-cases", _generated(edge_cases=True), _NO_ANNOTATIONS_KEY | _LABEL_ZERO),
]


def _task_files(root: Path) -> dict[str, list[str]]:
    """COCO task -> its JSON files directly in annotations/ (as Datumaro's importer names them)."""
    found: dict[str, list[str]] = {}
    for path in sorted((root / "annotations").glob("*.json")):
        task = next((t for t in TASKS if path.name.startswith(t + "_")), None)
        if task is not None:
            found.setdefault(task, []).append(path.name)
    return found


def _export_through_dsrepo(cli, backend, import_args: list[str]) -> Path:
    project = backend.create_args()
    out = backend.tmp / "out"
    for args in (
        ["create", *project],
        ["import", "-q", "-p", project[1], "-f", "coco", *import_args],
        ["export", "-q", "-p", project[1], "-f", "coco", "--save-images", "-o", str(out)],
    ):
        cli(*args)
    return out


# ----------------------------------------------------------------- what Datumaro sees, as values

class _Bits:
    """A mask's pixels as shape + packed bits; repr is short (shape, pixel count, digest)."""

    __slots__ = ("shape", "packed", "ones")

    def __init__(self, image: Any) -> None:
        mask = np.asarray(image).astype(bool)
        self.shape, self.packed, self.ones = mask.shape, np.packbits(mask).tobytes(), int(mask.sum())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Bits) and (self.shape, self.packed) == (other.shape, other.packed)

    def __hash__(self) -> int:
        return hash((self.shape, self.packed))

    def __repr__(self) -> str:
        return f"<mask {self.shape} {self.ones} px sha1:{hashlib.sha1(self.packed).hexdigest()[:12]}>"


def _plain(value: Any) -> Any:
    """numpy values and tuples as plain Python ones (bool stays bool, int stays int)."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _json(value: Any) -> str:
    """Canonical text of a JSON-like value: key order ignored, 1 / 1.0 / true kept apart."""
    return json.dumps(_plain(value), sort_keys=True, ensure_ascii=False, default=repr)


def _geometry(ann: Any) -> Any:
    kind = ann.type
    if kind in (AnnotationType.bbox, AnnotationType.polygon, AnnotationType.polyline):
        return _json(ann.points)
    if kind == AnnotationType.points:
        return _json(ann.points), tuple(int(v) for v in ann.visibility)
    if kind == AnnotationType.caption:
        return ann.caption
    if kind == AnnotationType.mask:
        return _Bits(ann.image)
    if kind == AnnotationType.label:
        return None
    raise AssertionError(f"annotation type {kind.name} is not expected from COCO: {ann!r}")


def _view(dataset: Dataset, root: Path) -> dict[str, Any]:
    """Everything compared, as plain values; reads every annotation (masks included)."""
    categories = dataset.categories()
    labels = categories.get(AnnotationType.label)
    names = [c.name for c in labels] if labels is not None else []
    points = categories.get(AnnotationType.points)
    items: dict[tuple[str, str], dict[str, Any]] = {}
    count = 0
    for item in dataset:
        count += 1
        annotations = []
        for ann in item.annotations:
            label = getattr(ann, "label", None)
            annotations.append((
                type(ann).__name__, ann.type.name, ann.id, ann.group, ann.object_id,
                getattr(ann, "z_order", None), None if label is None else names[label],
                _json(ann.attributes), _geometry(ann),
            ))
        media = item.media
        path = Path(media.path) if getattr(media, "path", None) else None
        items[(item.id, item.subset)] = {
            "media": None if media is None else (
                type(media).__name__, _plain(media.size),
                None if path is None else path.relative_to(root).as_posix(),
                hashlib.sha1(path.read_bytes()).hexdigest()[:16] if path is not None and path.is_file() else None,
            ),
            "attributes": _json(item.attributes),
            "annotations": sorted(annotations, key=repr),
        }
    return {
        "category types": sorted(t.name for t in categories),
        "labels": [(c.name, c.parent, sorted(c.attributes)) for c in labels] if labels is not None else None,
        "label groups": [repr(g) for g in labels.label_groups] if labels is not None else None,
        "keypoints": None if points is None else sorted(
            (label_id, list(cat.labels), sorted(tuple(j) for j in cat.joints))
            for label_id, cat in points.items.items()
        ),
        "item count": count,
        "items": items,
    }


def _failure(error: BaseException, root: Path) -> list[tuple[str, str]]:
    """An exception chain as (type, message) pairs, with the dataset folder written <root>."""
    chain = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = type(current)
        chain.append((f"{kind.__module__}.{kind.__qualname__}", str(current).replace(str(root), "<root>")))
        current = current.__cause__ or current.__context__
    return chain


@dataclass
class _Reading:
    dataset: Dataset | None = None
    view: dict[str, Any] | None = None
    failure: list[tuple[str, str]] | None = None


def _read(root: Path, format_name: str) -> _Reading:
    """Datumaro's reading of one task of a folder; a failure while reading lazy parts counts too."""
    try:
        dataset = Dataset.import_from(str(root), format_name)
        return _Reading(dataset, _view(dataset, root))
    except Exception as error:  # noqa: BLE001 - any failure is a result to compare
        return _Reading(failure=_failure(error, root))


def _short(value: Any, limit: int = 600) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Readable differences between two views (original first), empty if they are equal."""
    found = []
    for key in expected:
        if key != "items" and expected[key] != actual[key]:
            found.append(f"{key}: original {_short(expected[key])} != export {_short(actual[key])}")
    left, right = expected["items"], actual["items"]
    if left.keys() != right.keys():
        found.append(f"items only in the original: {sorted(left.keys() - right.keys())[:5]}, "
                     f"only in the export: {sorted(right.keys() - left.keys())[:5]}")
    for key in sorted(left.keys() & right.keys()):
        a, b = left[key], right[key]
        for part in ("media", "attributes"):
            if a[part] != b[part]:
                found.append(f"item {key} {part}: original {a[part]!r} != export {b[part]!r}")
        if a["annotations"] != b["annotations"]:
            only_a = [x for x in a["annotations"] if x not in b["annotations"]]
            only_b = [x for x in b["annotations"] if x not in a["annotations"]]
            found.append(f"item {key}: {len(a['annotations'])} vs {len(b['annotations'])} annotations; "
                         f"only in the original {_short(only_a[:3])}; only in the export {_short(only_b[:3])}")
    return found


def _datumaro_verdict(expected: Dataset, actual: Dataset) -> dict[str, Any]:
    """What Datumaro's own EqualityComparator reports as different (empty dict: nothing)."""
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a summary
        report = EqualityComparator().compare_datasets(expected, actual)
    return {key: value for key, value in report.items() if value}


def _compare_task(original: Path, out: Path, task: str) -> tuple[list[tuple[str, str]] | None, list[str]]:
    """(how Datumaro failed to read the original or None, problems found) for one task."""
    format_name = f"coco_{task}"
    expected, actual = _read(original, format_name), _read(out, format_name)
    if expected.failure is not None:
        if actual.failure != expected.failure:
            return expected.failure, [f"{format_name}: Datumaro fails on the original with {expected.failure}, "
                                      f"but on the export with {actual.failure or 'no error'}"]
        return expected.failure, []
    if actual.failure is not None:
        return None, [f"{format_name}: Datumaro reads the original but fails on the export: {actual.failure}"]
    problems = [f"{format_name}: {d}" for d in _differences(expected.view, actual.view)]
    if expected.view["item count"] == 0:
        problems.append(f"{format_name}: Datumaro saw no items in the original: nothing was compared")
    verdict = _datumaro_verdict(expected.dataset, actual.dataset)
    if verdict:
        problems.append(f"{format_name}: Datumaro's EqualityComparator: {_short(verdict, 2000)}")
    return None, problems


# ----------------------------------------------------------------------------------- the test

@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_datumaro_sees_the_export_as_the_original(cli, backend, case: Case):
    original, import_args = case.prepare(backend.tmp / "input")
    out = _export_through_dsrepo(cli, backend, import_args)

    tasks = _task_files(original)
    assert tasks, f"no COCO task file in {original}"
    assert _task_files(out) == tasks, "the export does not hold the same task files as the original"

    problems: list[str] = []
    rejected: dict[str, str] = {}
    for task in tasks:
        failure, found = _compare_task(original, out, task)
        problems += found
        if failure is not None:
            rejected[task] = failure[-1][0].rsplit(".", 1)[-1]  # the root cause's class
    assert not problems, "\n".join(problems)
    # Datumaro rejects exactly the files this module says it cannot read, for the reason given.
    assert rejected == case.datumaro_rejects
    assert rejected.keys() != tasks.keys(), "Datumaro read none of the tasks: nothing was compared"


# ------------------------------------------------------- the comparison notices what it must

def _edit_json(names: str, change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    """Apply `change` to each of the space-separated annotation files."""

    def tamper(root: Path) -> None:
        for name in names.split():
            path = root / "annotations" / name
            data = json.loads(path.read_text(encoding="utf-8"))
            change(data)
            path.write_text(json.dumps(data), encoding="utf-8")

    return tamper


def _ann(data: dict[str, Any], ann_id: int) -> dict[str, Any]:
    return next(a for a in data["annotations"] if a["id"] == ann_id)


def _recolour_one_panoptic_pixel(root: Path) -> None:
    path = root / "annotations" / "panoptic_val" / "b.png"
    pixels = np.array(Image.open(path).convert("RGB"))
    ids = pixels[..., 0].astype(np.int64) + (pixels[..., 1].astype(np.int64) << 8)
    y, x = np.argwhere(ids == ids.max())[0]  # one pixel of the highest segment becomes void
    pixels[y, x] = 0
    Image.fromarray(pixels).save(path)


def _swap(data: dict[str, Any], key: str, i: int, j: int) -> None:
    data[key][i], data[key][j] = data[key][j], data[key][i]


def _rename_first_two_labels(data: dict[str, Any]) -> None:
    cats = data["categories"]
    cats[0]["name"], cats[1]["name"] = cats[1]["name"], cats[0]["name"]


TAMPERS = {
    "bbox": ("instances", _edit_json(
        "instances_train.json", lambda d: d["annotations"][0]["bbox"].__setitem__(0, 2.5))),
    "polygon point": ("instances", _edit_json(
        "instances_val.json", lambda d: _ann(d, 1)["segmentation"][0].__setitem__(5, 3.0))),
    "rle pixels": ("instances", _edit_json(
        "instances_val.json", lambda d: _ann(d, 2)["segmentation"].__setitem__("counts", [0, 21, 29]))),
    "annotation id": ("instances", _edit_json("instances_val.json", lambda d: _ann(d, 2).__setitem__("id", 3))),
    "attribute type": ("instances", _edit_json(
        "instances_val.json", lambda d: _ann(d, 1)["attributes"].__setitem__("x", 1.0))),
    "crowd flag": ("stuff", _edit_json("stuff_val.json", lambda d: d["annotations"][0].__setitem__("iscrowd", 0))),
    "keypoint visibility": ("person_keypoints", _edit_json(
        "person_keypoints_train.json", lambda d: d["annotations"][0]["keypoints"].__setitem__(2, 1))),
    "skeleton": ("person_keypoints", _edit_json(
        "person_keypoints_train.json person_keypoints_val.json", lambda d: d["categories"][0]["skeleton"].pop())),
    "caption": ("captions", _edit_json("captions_val.json", lambda d: d["annotations"][0].__setitem__("caption", "x"))),
    "label names": ("labels", _edit_json("labels_train.json labels_val.json", _rename_first_two_labels)),
    "label of an annotation": ("labels", _edit_json(
        "labels_val.json", lambda d: d["annotations"][0].__setitem__(
            "category_id", next(c["id"] for c in d["categories"] if c["id"] != d["annotations"][0]["category_id"])))),
    "image size": ("image_info", _edit_json("image_info_val.json", lambda d: d["images"][0].__setitem__("width", 6))),
    "image file": ("image_info", _edit_json(
        "image_info_val.json", lambda d: d["images"][0].__setitem__("file_name", "b.png"))),
    "image id": ("image_info", _edit_json("image_info_val.json", lambda d: d["images"][0].__setitem__("id", 41))),
    "panoptic pixel": ("panoptic", _recolour_one_panoptic_pixel),
    "panoptic segment order is not a difference": ("panoptic", _edit_json(
        "panoptic_val.json", lambda d: _swap(d["annotations"][0], "segments_info", 0, 1))),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_the_comparison_sees_a_changed_file(tmp_path, name):
    """The oracle is not blind: one changed value in a file makes Datumaro's readings differ
    (and a mere reordering, which Datumaro does itself, does not)."""
    task, tamper = TAMPERS[name]
    source = DATA / "datumaro_coco" / "coco"
    shutil.copytree(source, tmp_path / "a")
    shutil.copytree(source, tmp_path / "b")
    tamper(tmp_path / "b")
    failure, problems = _compare_task(tmp_path / "a", tmp_path / "b", task)
    assert failure is None
    if name.endswith("is not a difference"):
        assert problems == []
    else:
        assert problems, f"changing the {name} went unnoticed"
