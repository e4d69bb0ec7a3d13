"""Property-based tests (Hypothesis): masks survive a database round trip pixel for pixel, any
corruption of a file either imports losslessly or fails with an InputError that leaves the
database as it was, and the RLE decoder reads what pycocotools reads.

Example counts scale with the loaded profile (conftest: `ci` by default, `dev` for a bigger
hunt). The database tests share a project among up to 20 examples (see Scratch), rather than
make a database per example: each example imports its own subset as a new source and checks
only the files of that subset, so examples do not interfere.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as coco_mask

from helpers import database_contents, id_map, json_difference, load_json, masks_of
from repo.coco.reader import read_task_file
from repo.coco.rle import RleError, check_runs, compress_runs, decode_string, decode_strings
from repo.errors import InputError
from repo.exporting import export_dataset
from repo.importing import import_dataset
from repo.model.jsonio import dumps_text
from repo.model.policy import ErrorPolicy

DATASET = Path(__file__).parent / "data" / "datumaro_coco" / "coco"
BUDGET = settings().max_examples  # the loaded profile's
BOM = b"\xef\xbb\xbf"
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]


def examples(share: float, least: int = 2) -> int:
    """A test's number of examples: a share of the profile's budget."""
    return max(least, round(BUDGET * share))


# -- oracles -----------------------------------------------------------------------------------

def _signed_zero_difference(expected: Any, actual: Any, path: str = "$") -> str | None:
    """json_difference compares with ==, which takes -0.0 for 0.0; a lossless store may not."""
    if isinstance(expected, float):
        same = math.copysign(1.0, expected) == math.copysign(1.0, actual)
        return None if same else f"{path}: {expected!r} != {actual!r}"
    pairs: list[tuple[Any, Any, str]] = []
    if isinstance(expected, dict):
        pairs = [(expected[key], actual[key], f"{path}.{key}") for key in expected]
    elif isinstance(expected, list):
        pairs = [(left, right, f"{path}[{index}]") for index, (left, right) in enumerate(zip(expected, actual))]
    return next(filter(None, (_signed_zero_difference(*pair) for pair in pairs)), None)


def difference(expected: Any, actual: Any) -> str | None:
    """Strict JSON equality: helpers.json_difference, and the sign of zero."""
    return json_difference(expected, actual) or _signed_zero_difference(expected, actual)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def reference_parse(raw: bytes) -> Any:
    """What a file means, by the standard library (a leading BOM aside, which dsrepo skips)."""
    if raw.startswith(BOM):
        raw = raw[len(BOM):]
    return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)


def runs_of(mask: np.ndarray) -> list[int]:
    """COCO's run lengths of a mask, column-major, zeros first, computed without pycocotools."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], edges, [flat.size]))
    runs = np.diff(bounds).tolist()
    return [0] + runs if flat[0] else runs


def _s8(value: int) -> int:
    value &= 0xFF
    return value - 0x100 if value & 0x80 else value


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & (1 << 31) else value


def _s64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value & (1 << 63) else value


def pycocotools_runs(counts: bytes) -> list[int] | None:
    """The runs pycocotools' `rleFrString` (maskApi.c) reads, modelled with its C types on x86-64:
    `char c` is signed, `(c & 0x1f) << 5*k` and `-1 << 5*k` are 32-bit int shifts whose count the
    CPU takes mod 32, `x` is a 64-bit long, `cnts` are 32-bit unsigned. None where C would read
    past the string. (test_pycocotools_model_matches_the_binary checks the model.)"""
    runs: list[int] = []
    position = 0
    while position < len(counts) and counts[position]:
        value, groups, more = 0, 0, True
        while more:
            if position >= len(counts):
                return None
            code = _s8(counts[position] - 48)
            value |= _s32((code & 0x1F) << ((5 * groups) & 31))
            more = bool(code & 0x20)
            position += 1
            groups += 1
            if not more and code & 0x10:
                value |= _s32(-1 << ((5 * groups) & 31))
        if len(runs) > 2:
            value = _s64(value + runs[-2])
        runs.append(value & 0xFFFFFFFF)
    return runs


# -- strategies: masks, polygons, panoptic id maps ---------------------------------------------

shapes = st.one_of(
    st.tuples(st.just(1), st.integers(1, 64)),
    st.tuples(st.integers(1, 64), st.just(1)),
    st.tuples(st.integers(1, 24), st.integers(1, 24)),
)
# Some masks large enough for runs of 3 and 4 characters (32768 pixels and more).
mask_shapes = st.one_of(shapes, st.tuples(st.integers(100, 250), st.integers(100, 250)), st.just((1, 40000)))

MASK_KINDS = ("zeros", "ones", "checker", "random", "rectangles", "first", "last")


def make_mask(kind: str, height: int, width: int, seed: int, density: float) -> np.ndarray:
    """A binary mask of one of the shapes that trip run-length coders up."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), dtype=np.uint8)
    if kind == "ones":
        mask[:] = 1
    elif kind == "checker":
        mask[:] = np.indices((height, width)).sum(axis=0) % 2
    elif kind == "random":
        mask[:] = rng.random((height, width)) < density
    elif kind == "rectangles":
        for _ in range(int(rng.integers(1, 4))):
            y0, y1 = sorted(rng.integers(0, height + 1, 2))
            x0, x1 = sorted(rng.integers(0, width + 1, 2))
            mask[y0:y1, x0:x1] = 1
    elif kind == "first":  # one pixel at the start of the column-major order
        mask[0, 0] = 1
    elif kind == "last":
        mask[-1, -1] = 1
    return mask


@st.composite
def masks(draw: st.DrawFn, shape: tuple[int, int] | None = None) -> np.ndarray:
    height, width = shape if shape is not None else draw(mask_shapes)
    kind = draw(st.sampled_from(MASK_KINDS))
    return make_mask(kind, height, width, draw(st.integers(0, 2**32 - 1)), draw(st.floats(0, 1)))


def coordinates(limit: int) -> st.SearchStrategy[int | float]:
    """Polygon coordinates along an axis of `limit` pixels: inside the image or beyond it."""
    return st.one_of(
        st.floats(-limit / 2, limit * 1.5, allow_nan=False, allow_infinity=False),
        st.integers(-limit, 2 * limit),
    )


@st.composite
def polygons(draw: st.DrawFn, height: int, width: int) -> list[list[int | float]]:
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        points = draw(st.lists(st.tuples(coordinates(width), coordinates(height)), min_size=3, max_size=7))
        parts.append([value for point in points for value in point])
    return parts


def rle_area_bbox(mask: np.ndarray) -> tuple[int, list[float]]:
    rle = coco_mask.encode(np.asfortranarray(mask))
    return int(coco_mask.area(rle)), [float(v) for v in coco_mask.toBbox(rle)]


@st.composite
def instances_images(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[int, np.ndarray]]:
    """Images, their annotations (uncompressed RLE, compressed RLE, polygons), and the mask each
    RLE annotation was made from."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    expected: dict[int, np.ndarray] = {}
    for image_id in range(1, draw(st.integers(1, 4)) + 1):
        height, width = draw(mask_shapes)
        images.append({"id": image_id, "width": width, "height": height, "file_name": f"{image_id}.jpg"})
        for _ in range(draw(st.integers(1, 6))):
            annotation_id = len(annotations) + 1
            form = draw(st.sampled_from(("list", "string", "polygon")))
            annotation: dict[str, Any] = {"id": annotation_id, "image_id": image_id, "category_id": 1}
            if form == "polygon":
                annotation["segmentation"] = draw(polygons(height, width))
                annotation["area"] = draw(st.floats(0, height * width))
                annotation["iscrowd"] = 0
            else:
                mask = draw(masks((height, width)))
                expected[annotation_id] = mask
                counts: Any = runs_of(mask)
                if form == "string":
                    counts = coco_mask.encode(np.asfortranarray(mask))["counts"].decode("ascii")
                annotation["segmentation"] = {"counts": counts, "size": [height, width]}
                annotation["area"], annotation["bbox"] = rle_area_bbox(mask)
                annotation["iscrowd"] = draw(st.sampled_from((0, 1)))
            annotations.append(annotation)
    return images, annotations, expected


segment_ids = st.one_of(st.integers(1, 2**24 - 1), st.sampled_from((1, 255, 256, 65535, 65536, 2**24 - 1)))


@st.composite
def id_maps(draw: st.DrawFn) -> tuple[np.ndarray, list[int]]:
    """A panoptic id map (void, 0, with random rectangles of random segment ids painted over),
    and its painted ids in the order segments_info lists them."""
    height, width = draw(shapes)
    painted = np.zeros((height, width), dtype=np.uint32)
    for segment_id in draw(st.lists(segment_ids, unique=True, max_size=5)):
        y0, y1 = sorted(draw(st.tuples(st.integers(0, height), st.integers(0, height))))
        x0, x1 = sorted(draw(st.tuples(st.integers(0, width), st.integers(0, width))))
        painted[y0:y1, x0:x1] = segment_id
    present = [int(v) for v in np.unique(painted) if v]
    return painted, draw(st.permutations(present))


def write_png(path: Path, painted: np.ndarray) -> None:
    """An RGB panoptic PNG (id = R + 256 G + 256^2 B), written by Pillow, not by dsrepo."""
    rgb = np.stack([(painted >> shift) & 0xFF for shift in (0, 8, 16)], axis=-1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, "RGB").save(path)


def segments_info(painted: np.ndarray, order: list[int]) -> list[dict[str, Any]]:
    """Every painted segment, with COCO's integer area and bbox."""
    segments = []
    for segment_id in order:
        ys, xs = np.nonzero(painted == segment_id)
        bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
        segments.append(
            {"id": segment_id, "category_id": 1 + segment_id % 2, "area": int(ys.size), "bbox": bbox, "iscrowd": 0}
        )
    return segments


def _document(images: list[dict[str, Any]], annotations: list[dict[str, Any]], categories: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "info": {"description": "hypothesis"}, "licenses": [], "categories": categories,
        "images": images, "annotations": annotations,
    }


# -- property 1: masks survive import and export ------------------------------------------------

class Scratch:
    """The projects of a test's examples: each example gets fresh folders and a subset of its
    own in a shared project, renewed every PROJECT_USES examples (exports write every subset,
    so a project used by all examples of a long run would make the run quadratic)."""

    PROJECT_USES = 20

    def __init__(self, backend: Any, tmp: Path, preload: bool):
        self.backend = backend
        self.tmp = tmp
        self.preload = preload
        self._count = itertools.count()
        self.project: Any = None

    def next(self) -> tuple[str, Path, Path]:
        """A subset name never used before, a dataset folder and an export folder."""
        n = next(self._count)
        if n % self.PROJECT_USES == 0:
            self._renew(f"project{n}")
        return f"ex{n}", self.tmp / f"in{n}", self.tmp / f"out{n}"

    def _renew(self, name: str) -> None:
        if self.project is not None:
            self.project.engine.dispose()
        self.project = self.backend.create(name)
        if self.preload:  # every import then lands in a project already holding data
            import_dataset(self.project, "coco", DATASET, name="base")


def test_masks_and_id_maps_round_trip(backend, tmp_path):
    """Masks as uncompressed RLE, compressed RLE and polygons, and panoptic id maps, come back
    as the same JSON, drawn by pycocotools pixel for pixel, and painted id for id."""
    scratch = Scratch(backend, tmp_path, preload=False)

    @settings(max_examples=examples(0.15), suppress_health_check=SLOW)
    @given(instances=instances_images(), maps=st.lists(id_maps(), min_size=1, max_size=3))
    def round_trip(instances, maps):
        subset, root, out = scratch.next()
        images, annotations, expected = instances
        categories = [{"id": 1, "name": "thing", "supercategory": ""}, {"id": 2, "name": "stuff"}]
        instances_doc = _document(images, annotations, categories)
        panoptic_images, records = [], []
        for image_id, (painted, order) in enumerate(maps, start=1):
            height, width = painted.shape
            panoptic_images.append({"id": image_id, "width": width, "height": height, "file_name": f"{image_id}.jpg"})
            records.append({"image_id": image_id, "file_name": f"{image_id}.png", "segments_info": segments_info(painted, order)})
            write_png(root / "annotations" / f"panoptic_{subset}" / f"{image_id}.png", painted)
        panoptic_doc = _document(panoptic_images, records, categories)
        files = {"instances": instances_doc, "panoptic": panoptic_doc}
        for task, document in files.items():
            (root / "annotations" / f"{task}_{subset}.json").write_text(json.dumps(document), encoding="utf-8")

        import_dataset(scratch.project, "coco", root, name=subset)
        export_dataset(scratch.project, "coco", out)

        for task, document in files.items():
            exported = load_json(out / "annotations" / f"{task}_{subset}.json")
            found = difference(document, exported)
            assert found is None, f"{task}: {found}"
        drawn_in, drawn_out = (masks_of(folder / "annotations" / f"instances_{subset}.json") for folder in (root, out))
        assert drawn_in.keys() == drawn_out.keys() == {a["id"] for a in annotations}
        for annotation_id, mask in drawn_in.items():
            if annotation_id in expected:  # the generator's RLE means what we think it means
                np.testing.assert_array_equal(mask, expected[annotation_id])
            np.testing.assert_array_equal(drawn_out[annotation_id], mask, err_msg=f"annotation {annotation_id}")
        for image_id, (painted, _) in enumerate(maps, start=1):
            exported_png = out / "annotations" / f"panoptic_{subset}" / f"{image_id}.png"
            np.testing.assert_array_equal(id_map(exported_png), painted, err_msg=f"image {image_id}")

    round_trip()


# -- property 2: a corrupted file imports losslessly or fails cleanly ---------------------------

def _with_generated_records(task: str) -> dict[str, Any]:
    """A valid file of the task: the Datumaro sample, plus records with the rarer features."""
    document = load_json(DATASET / "annotations" / f"{task}_val.json")
    images, annotations = document["images"], document["annotations"]
    if task in ("instances", "person_keypoints"):
        images.append({"id": 2**40, "width": 7, "height": 3, "file_name": "sub/c d é.jpg", "extra": None})
        mask = make_mask("rectangles", 3, 7, seed=5, density=0.5)
        area, bbox = rle_area_bbox(mask)
        string = coco_mask.encode(np.asfortranarray(mask))["counts"].decode("ascii")
        annotations += [
            {"id": 3, "image_id": 2**40, "category_id": 1, "segmentation": {"counts": string, "size": [3, 7]},
             "area": area, "bbox": bbox, "iscrowd": 1, "score": 0.25},
            {"id": -4, "image_id": 2**40, "category_id": 2, "segmentation": [[0.5, 0.5, 6.5, 0.5, 3, 2.75], [1, 1, 2, 1, 2, 2]],
             "area": 9.5, "bbox": [0.5, 0.5, 6, 2.25], "iscrowd": 0, "attributes": {"occluded": False}, "note": None},
            {"id": 2**62, "image_id": 40, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0, "score": 1},
        ]
    if task == "person_keypoints":
        document["categories"].append(
            {"id": 3, "name": "person", "supercategory": "person", "keypoints": ["nose", "eye"], "skeleton": [[1, 2]]}
        )
        annotations.append({"id": 9, "image_id": 40, "category_id": 3, "keypoints": [1, 2, 2, 3.5, 4, 1],
                            "num_keypoints": 2, "bbox": [1, 2, 2.5, 2], "area": 5.0, "iscrowd": 0, "segmentation": []})
    if task == "captions":
        annotations.append({"id": 3, "image_id": 40, "caption": "ünïcødé 😀 \"quoted\" \\ back\nslash"})
    if task == "panoptic":
        annotations[0]["segments_info"][0]["score"] = 0.5
    return document


TASKS = ("instances", "person_keypoints", "captions", "panoptic")
BASES = {task: _with_generated_records(task) for task in TASKS}

special_ints = st.sampled_from((
    0, 1, -1, 2**31 - 1, 2**31, 2**32, 2**53, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1,
    2**64 - 1, 2**64, -(2**64), 2**70, -(2**70), 10**30,
))
special_floats = st.sampled_from((1e308, -1e308, 5e-324, -0.0, 0.0, 0.1 + 0.2, 1.0, 0.5, 2.0**53, 1e16))
special_strings = st.sampled_from((
    "", "\x00", "a\x00b", "../x", "/abs", "C:\\x", "a\\..\\b", "x/../../y", ".", "..", "é", "😀",
    "\u202e", "\ufeff", "x" * 300, "b.png", "b.jpg", "0", "counts",
))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), special_ints, st.floats(allow_nan=False, allow_infinity=False),
    special_floats, st.text(max_size=8), special_strings,
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4) | special_strings, inner, max_size=4),
    max_leaves=8,
)

# JSON text that Python values cannot spell: placed verbatim where a value was.
RAW_VALUES = (
    "1e400", "-1e400", "1E+2", "-0", "-0.0", "1.0e-400", "123456789012345678901", "-9223372036854775809",
    "-9999999999999999999", "9223372036854775808", "18446744073709551616", '"\\ud800"', '"\\udfff x"',
    '"\\ud83d\\ude00"', '"\\u0000"', "NaN", "-Infinity", "[" * 300 + "]" * 300, "[" * 1100 + "]" * 1100,
    '{"a": 1, "a": 2}', '["\\ud800", 123456789012345678901]', '{"\\udc00": 12345678901234567890123}',
    "[" * 1100 + "12345678901234567890" + "]" * 1100, '[-9223372036854775809, 123456789012345678901]',
    '[1e400, 123456789012345678901]',
)
INVALID_UTF8 = (b"\xff", b"\x80", b"\xc3", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00")


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value, the root included."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from paths(inner, prefix + (key,))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from paths(inner, prefix + (index,))


def get(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


def put(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    get(document, path[:-1])[path[-1]] = value
    return document


@st.composite
def mutated_files(draw: st.DrawFn, task: str, byte_edits: bool = True) -> bytes:
    """The task's valid file after 1 to 3 random edits of its JSON, then maybe of its bytes
    (those mostly make it unreadable: the database tests, which are slow, go without)."""
    document = copy.deepcopy(BASES[task])
    raw_values: dict[str, str] = {}
    for _ in range(draw(st.integers(1, 3))):
        places = list(paths(document))
        kind = draw(st.sampled_from(("delete", "replace", "replace", "duplicate", "copy", "raw", "rename")))
        path = draw(st.sampled_from(places))
        parent = get(document, path[:-1]) if path else None
        if kind == "delete" and path:
            del parent[path[-1]]
        elif kind == "replace":
            document = put(document, path, draw(json_values))
        elif kind == "duplicate" and isinstance(parent, list):
            parent.insert(path[-1], copy.deepcopy(parent[path[-1]]))
        elif kind == "copy":
            document = put(document, path, copy.deepcopy(get(document, draw(st.sampled_from(places)))))
        elif kind == "raw":
            placeholder = f"@@raw{len(raw_values)}@@"
            raw_values[placeholder] = draw(st.sampled_from(RAW_VALUES))
            document = put(document, path, placeholder)
        elif kind == "rename" and isinstance(parent, dict):
            new_key = draw(st.text(max_size=6) | special_strings | st.sampled_from(list(parent)))
            parent[new_key] = parent.pop(path[-1])
    text = json.dumps(document, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from((None, 1))))
    for placeholder, fragment in raw_values.items():
        text = text.replace(json.dumps(placeholder), fragment)
    raw = text.encode("utf-8")
    edits = ("none", "none", "truncate", "invalid_utf8", "bom", "byte") if byte_edits else ("none", "bom")
    edit = draw(st.sampled_from(edits))
    at = draw(st.integers(0, len(raw)))
    if edit == "truncate":
        raw = raw[:at]
    elif edit == "invalid_utf8":
        raw = raw[:at] + draw(st.sampled_from(INVALID_UTF8)) + raw[at:]
    elif edit == "bom":
        raw = BOM + raw
    elif edit == "byte" and raw:
        at = min(at, len(raw) - 1)
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1:]
    note(f"file: {raw[:2000]!r}")
    return raw


def _check_error(error: InputError, shown: str) -> None:
    """An InputError names its file first: "FILE: RECORD: field 'F': problem"."""
    assert str(error).startswith(f"{error.file}: ") and error.problem, str(error)
    assert error.file.startswith(shown.removesuffix(".json")), str(error)


@pytest.mark.parametrize("task", TASKS)
def test_reader_accepts_or_raises_input_error(task, tmp_path):
    shown = f"annotations/{task}_val.json"

    @settings(max_examples=examples(1.5), suppress_health_check=SLOW)
    @given(raw=mutated_files(task))
    def parse(raw):
        path = tmp_path / f"{task}_val.json"
        path.write_bytes(raw)
        try:
            read_task_file(path, shown, task, "val", ErrorPolicy())
        except InputError as error:
            _check_error(error, shown)

    parse()


@pytest.mark.parametrize("task", TASKS)
def test_import_is_lossless_or_changes_nothing(backend, task, tmp_path):
    """The corrupted file is imported with valid files of the other tasks for the same subset,
    which list the same images: every file must come back, or nothing may be stored."""
    scratch = Scratch(backend, tmp_path, preload=True)

    @settings(max_examples=examples(0.25), suppress_health_check=SLOW)
    @given(raw=mutated_files(task, byte_edits=False))
    def import_export(raw):
        subset, root, out = scratch.next()
        files = {name: dumps_text(BASES[name]).encode() for name in TASKS} | {task: raw}
        for name, content in files.items():
            path = root / "annotations" / f"{name}_{subset}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        shutil.copytree(DATASET / "annotations" / "panoptic_val", root / "annotations" / f"panoptic_{subset}")
        before = database_contents(scratch.project)
        try:
            import_dataset(scratch.project, "coco", root, name=subset)
        except InputError as error:
            _check_error(error, str(root / "annotations" / f"{task}_{subset}.json"))
            assert database_contents(scratch.project) == before, "a failed import changed the database"
            return
        export_dataset(scratch.project, "coco", out)
        for name, content in files.items():
            expected = reference_parse(content)  # dsrepo took it: it must be JSON
            found = difference(expected, load_json(out / "annotations" / f"{name}_{subset}.json"))
            assert found is None, f"{name}: {found}"
        for record in reference_parse(files["panoptic"])["annotations"]:
            png = Path("annotations", f"panoptic_{subset}", record["file_name"])
            np.testing.assert_array_equal(id_map(out / png), id_map(root / png))

    import_export()


# -- property 3: the RLE decoder ----------------------------------------------------------------

@settings(max_examples=examples(1.0))
@given(mask=masks())
def test_decode_string_reads_pycocotools_encoding(mask):
    counts = coco_mask.encode(np.asfortranarray(mask))["counts"]
    np.testing.assert_array_equal(coco_mask.decode({"size": list(mask.shape), "counts": counts}), mask)
    runs = decode_string(counts).tolist()
    assert runs == runs_of(mask) == pycocotools_runs(counts)
    check_runs(runs, *mask.shape)
    assert compress_runs(runs, *mask.shape) == counts


long_runs = st.one_of(
    st.integers(0, 40), st.integers(0, 2**32 - 1), st.integers(2**24, 2**26), st.integers(2**29 - 40, 2**29 + 40),
)


def characters(value: int) -> int:
    """Characters of a coded run in pycocotools' string: 5-bit groups, the last with the sign."""
    return next(k for k in itertools.count(1) if -(2 ** (5 * k - 1)) <= value < 2 ** (5 * k - 1))


@settings(max_examples=examples(1.0))
@given(runs=st.lists(long_runs, max_size=12))
def test_decode_string_inverts_compress_runs(runs):
    """Long runs too, up to 2^32-1: masks far bigger than the ones above. pycocotools' encoder
    allots 6 characters per run, NUL included, and overruns that buffer for a run taking 7
    (which it also misreads) or when all take 6: compress_runs must refuse exactly those."""
    coded = runs[:3] + [runs[i] - runs[i - 2] for i in range(3, len(runs))]
    unsafe = sum(map(characters, coded)) + 1 > 6 * len(runs) or any(characters(v) > 6 for v in coded)
    try:
        counts = compress_runs(runs, 1, sum(runs))
    except RleError:
        assert unsafe, f"refused {runs}"
        return
    assert not unsafe, f"handed {runs} to pycocotools' encoder"
    assert decode_string(counts).tolist() == runs
    assert pycocotools_runs(counts) == runs


alphabet_strings = st.lists(st.integers(48, 111), max_size=40).map(bytes)


@st.composite
def run_strings(draw: st.DrawFn) -> bytes:
    """Compressed strings made of whole run lengths of 1 to 14 groups (pycocotools writes <= 7)."""
    out = bytearray()
    for _ in range(draw(st.integers(1, 6))):
        groups = draw(st.lists(st.integers(0, 31), min_size=1, max_size=14))
        out += bytes(48 + g + (0x20 if i < len(groups) - 1 else 0) for i, g in enumerate(groups))
    return bytes(out)


@settings(max_examples=examples(3.0))
@given(counts=st.one_of(st.binary(max_size=40), alphabet_strings, run_strings()))
def test_decode_string_refuses_or_agrees_with_pycocotools(counts):
    try:
        runs = decode_string(counts)
    except RleError:
        return
    assert isinstance(runs, np.ndarray)
    total = int(runs.sum()) if runs.size else 0
    try:
        check_runs(runs, 1, total)
    except RleError:
        return
    # Accepted: pycocotools must read the very same runs, or it would draw (or overrun) otherwise.
    assert runs.tolist() == pycocotools_runs(counts)


@settings(max_examples=examples(1.0))
@given(masks=st.lists(masks(), max_size=5))
def test_decode_strings_reads_each_of_several_encodings(masks):
    """Several segments' strings decoded together: each its own runs (an image's segments)."""
    strings = [coco_mask.encode(np.asfortranarray(mask))["counts"] for mask in masks]
    runs, offsets = decode_strings(strings)
    assert len(offsets) == len(strings) + 1
    assert [runs[start:end].tolist() for start, end in zip(offsets, offsets[1:])] == list(map(runs_of, masks))


@settings(max_examples=examples(2.0))
@given(strings=st.lists(st.one_of(st.binary(max_size=20), alphabet_strings, run_strings()), max_size=4))
def test_decode_strings_refuses_what_any_string_alone_is_refused_for(strings):
    """Joined strings must read as each alone: a run never straddles two strings."""
    alone = []
    for counts in strings:
        try:
            alone.append(decode_string(counts).tolist())
        except RleError:
            with pytest.raises(RleError):
                decode_strings(strings)
            return
    runs, offsets = decode_strings(strings)
    assert [runs[start:end].tolist() for start, end in zip(offsets, offsets[1:])] == alone
    for counts, expected in zip(strings, alone):
        if expected and min(expected) >= 0 and max(expected) < 2**32:
            assert expected == pycocotools_runs(counts)


@settings(max_examples=examples(1.0))
@given(counts=run_strings())
def test_pycocotools_model_matches_the_binary(counts):
    """The oracle above against the real pycocotools, through `area` (it sums the odd runs
    without drawing, so no bad string can make it write out of bounds)."""
    modelled = pycocotools_runs(counts)
    assert modelled is not None
    area = int(coco_mask.area({"size": [1, 1], "counts": counts}))
    assert area == sum(modelled[1::2]) & 0xFFFFFFFF


run_values = st.one_of(st.integers(0, 2**32 - 1), st.integers(-5, 5), special_ints, st.integers())


@settings(max_examples=examples(1.0))
@given(runs=st.lists(run_values, max_size=8), height=st.integers(0, 2**31), width=st.integers(0, 2**31),
       fit=st.booleans(), as_array=st.booleans())
def test_check_runs_accepts_exactly_valid_runs(runs, height, width, fit, as_array):
    if fit and runs and all(0 <= v < 2**32 for v in runs) and sum(runs):
        height, width = 1, sum(runs)  # often exactly right
    valid = all(0 <= v < 2**32 for v in runs) and sum(runs) == height * width
    given_runs: Any = runs
    if as_array:
        if not all(-(2**63) <= v < 2**63 for v in runs):
            return
        given_runs = np.asarray(runs, dtype=np.int64)
    try:
        check_runs(given_runs, height, width)
    except RleError:
        assert not valid, f"refused valid runs {runs} for {height}x{width}"
    else:
        assert valid, f"accepted runs {runs} for {height}x{width}"
