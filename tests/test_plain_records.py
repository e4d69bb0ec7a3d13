"""The one-go reading of well-formed records (repo/coco/plain.py) against the step-by-step one.

The reader reads a record of the common shape in one go and hands anything else to its
step-by-step checks. Both must agree on every record: the same record, field for field and in
the same order, or the same error message. Tricky records (booleans where numbers go, floats
where integers go, -0.0, big integers, missing and extra keys, nulls, nested lists, RLE masks)
are read both ways; a few records are also checked against values worked out by hand, the
digest against blake2b of the standard library's sorted JSON text, and the plain-name test of
file names against the full path check."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from typing import Any

import pytest

from repo.coco import reader
from repo.coco.reader import read_task_document
from repo.errors import InputError
from repo.model import paths
from repo.model.policy import ErrorPolicy
from repo.model.records import INTEGER_BIT, NEGATIVE_ZERO_SHIFT

IMAGE = {"id": 5, "file_name": "a.jpg", "width": 10, "height": 5}
OBJECT = {
    "id": 7, "image_id": 5, "category_id": 1, "bbox": [1.5, 1, 2, 2.25], "area": 4.5, "iscrowd": 0,
    "segmentation": [[1, 1, 3.5, 1, 3, 3], [0.0, 0.0, 1, 0, 1, 1]],
}
KEYPOINTS = {**OBJECT, "keypoints": [1, 1, 2, 2.5, 2, 1], "num_keypoints": 2}
CAPTION = {"id": 7, "image_id": 5, "caption": "a person"}
LABEL = {"id": 7, "image_id": 5, "category_id": 1}
RLE_STRING = {"counts": "0:0", "size": [5, 10]}  # pycocotools' text for 50 background pixels
RLE_LIST = {"counts": [20, 10, 20], "size": [5, 10]}
CATEGORIES = [{"id": 1, "name": "person", "keypoints": ["nose", "eye"]}]


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(base)
    for key, value in changes.items():
        if value is _DELETE:
            del record[key]
        else:
            record[key] = value
    return record


_DELETE = object()

TRICKY_VALUES: list[Any] = [
    True, False, None, 0, 1, -0.0, 0.0, 2.0, 2**53, 2**53 + 1, -(2**53) - 1, 2**63, 2**64, 2**70, "1", "true",
    [], [1], [[1]], {}, {"a": 1}, 1e300, -1.5,
]


def _key_and_bbox_variants(base: dict[str, Any]) -> list[dict[str, Any]]:
    """`base`, then without each key, each key set to each tricky value, and each bbox number so."""
    records = [copy.deepcopy(base)]
    for key in base:
        records.append(_with(base, **{key: _DELETE}))
        records.extend(_with(base, **{key: value}) for value in TRICKY_VALUES)
    for index in range(4):
        for value in TRICKY_VALUES:
            bbox = list(base["bbox"])
            bbox[index] = value
            records.append(_with(base, bbox=bbox))
    return records


def _tricky_objects(base: dict[str, Any]) -> list[dict[str, Any]]:
    records = _key_and_bbox_variants(base)
    for extra in ({"score": 0.5}, {"attributes": {"occluded": True}}, {"note": None}, {"area": None}):
        records.append({**copy.deepcopy(base), **extra})
    for value in TRICKY_VALUES:
        records.append(_with(base, segmentation=[[1, 1, 3, 1, 3, value]]))
        records.append(_with(base, segmentation=[[1, 1, 3, 1, 3, 3], value]))
    for segmentation in (
        [], [[]], [[1, 1, 3, 1, 3]], [[1, 1, 3, 1]], [[1, 1, 3, 1, 3, 3, 4, 4]], [[1, 1, [3], 1, 3, 3]],
        RLE_STRING, RLE_LIST, {**RLE_STRING, "extra": 1}, {"counts": "0:0"}, {"counts": "true", "size": [5, 10]},
        {"counts": [50], "size": [5, 10]}, {"counts": [49], "size": [5, 10]}, {"counts": "0:0", "size": [10, 5]},
        {"counts": [20, True, 20], "size": [5, 10]}, {"counts": [20, "10", 20], "size": [5, 10]},
        {"counts": [20, 2**32, 20], "size": [5, 10]}, {"counts": [20, 10.0, 20], "size": [5, 10]},
        {"counts": [], "size": [5, 10]}, {"counts": "0:0", "size": [5.0, 10]},
    ):
        records.append(_with(base, segmentation=segmentation))
    deep: Any = [[1, 1, 3, 1, 3, 3]]
    for _ in range(300):
        deep = [deep]
    records.append(_with(base, segmentation=deep))
    if "keypoints" in base:
        for last in (True, "1", None, 2**70):
            records.append(_with(base, keypoints=[1, 1, 2, 2, 2, last]))
        records.extend(_with(base, keypoints=keypoints) for keypoints in ([1, 1, 2], [1, 1, 2, 2, 2]))
    return records


def _tricky_records(base: dict[str, Any]) -> list[dict[str, Any]]:
    if "bbox" in base:
        return _tricky_objects(base)
    records = [copy.deepcopy(base)]
    for key in base:
        records.append(_with(base, **{key: _DELETE}))
        records.extend(_with(base, **{key: value}) for value in TRICKY_VALUES)
    records.append({**copy.deepcopy(base), "score": 0.5})
    records.append(_with(base, caption="a\x00b"))
    return records


def _document(annotations: list[Any], images: list[Any] | None = None) -> dict[str, Any]:
    return {
        "categories": copy.deepcopy(CATEGORIES), "images": images or [copy.deepcopy(IMAGE)],
        "annotations": annotations,
    }


def _read_both(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], task: str
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """What the reader makes of a document (records kept, errors reported) with and without
    the one-go reading; every bad record is skipped and reported."""

    def read() -> tuple[Any, ...]:
        policy = ErrorPolicy(skip=True)
        task_file = read_task_document(copy.deepcopy(document), "f.json", task, "val", "f.json", policy)
        return (
            [list(image.items()) for image in task_file.images],
            [list(record.items()) for record in task_file.annotations],
            [str(error) for error in policy.skipped],
        )

    plain = read()
    with monkeypatch.context() as patched:
        patched.setattr(reader, "plain_images", lambda raw: ([None] * len(raw), None))
        patched.setattr(reader, "plain_annotation_batch", lambda *args: lambda raw: ([None] * len(raw), None))
        step_by_step = read()
    return plain, step_by_step


@pytest.mark.parametrize("task,base", [
    ("instances", OBJECT), ("stuff", _with(OBJECT, segmentation=RLE_STRING)),
    ("person_keypoints", KEYPOINTS), ("captions", CAPTION), ("labels", LABEL),
])
def test_each_tricky_record_reads_the_same_both_ways(monkeypatch, task, base):
    for record in _tricky_records(base):
        plain, step_by_step = _read_both(monkeypatch, _document([record]), task)
        assert plain == step_by_step, record


def test_a_file_of_tricky_records_reads_the_same_both_ways(monkeypatch):
    """Repeated ids among good and bad records, in one file, under `skip`."""
    rng = random.Random(9)
    records = _tricky_records(OBJECT) + _tricky_records(OBJECT)
    rng.shuffle(records)
    for index, record in enumerate(records):
        if rng.random() < 0.8 and isinstance(record, dict):
            record["id"] = index // 2
    plain, step_by_step = _read_both(monkeypatch, _document(records), "instances")
    assert plain == step_by_step
    assert plain[1] and plain[2]  # some records kept, some refused


def test_tricky_images_read_the_same_both_ways(monkeypatch):
    images: list[Any] = [copy.deepcopy(IMAGE)]
    for key in IMAGE:
        images.append(_with(IMAGE, **{key: _DELETE}))
        images.extend(_with(IMAGE, **{key: value}) for value in TRICKY_VALUES)
    for name in ("", "a/../b.jpg", "../b.jpg", "/b.jpg", "C:b.jpg", "C:\\b.jpg", "\\\\host\\b.jpg", "a\x00.jpg",
                 "dir/b.jpg", ".hidden.jpg", "a//b.jpg", "-b.jpg", "b.jpg"):
        images.append(_with(IMAGE, file_name=name))
    images.append({**copy.deepcopy(IMAGE), "license": 3, "coco_url": "http://x/a.jpg"})
    for index, image in enumerate(images):
        image.setdefault("file_name", f"{index}.jpg") if isinstance(image, dict) else None
    plain, step_by_step = _read_both(monkeypatch, _document([], images), "instances")
    assert plain == step_by_step


def _digest(obj: dict[str, Any]) -> bytes:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(text, digest_size=16).digest()


def test_a_plain_object_record_field_by_field():
    obj = _with(OBJECT, bbox=[1, 2.5, -0.0, 3], area=4)
    task_file = read_task_document(_document([obj]), "f.json", "instances", "val", "f.json", ErrorPolicy())
    ints = INTEGER_BIT["bbox_x"] | INTEGER_BIT["bbox_h"] | INTEGER_BIT["area"]
    assert list(task_file.annotations[0].items()) == [
        ("coco_id", 7), ("image_id", 5), ("number_forms", ints | INTEGER_BIT["bbox_w"] << NEGATIVE_ZERO_SHIFT),
        ("hash", _digest(obj)), ("category_id", 1), ("bbox_x", 1.0), ("bbox_y", 2.5), ("bbox_w", 0.0),
        ("bbox_h", 3.0), ("area", 4.0), ("iscrowd", 0), ("polygons", OBJECT["segmentation"]), ("kind", "polygon"),
        ("extra", None),
    ]


def test_a_plain_keypoints_record_with_a_mask():
    obj = _with(KEYPOINTS, segmentation=RLE_LIST, iscrowd=1)
    task_file = read_task_document(_document([obj]), "f.json", "person_keypoints", "val", "f.json", ErrorPolicy())
    record = task_file.annotations[0]
    assert (record["kind"], record["rle_form"], record["iscrowd"]) == ("points", "list", 1)
    assert (record["keypoints"], record["num_keypoints"], record["hash"]) == ([1, 1, 2, 2.5, 2, 1], 2, _digest(obj))
    assert "polygons" not in record


def test_plain_file_names_are_those_the_full_check_accepts():
    """The quick test of plain names never accepts a name that the full check would refuse."""
    rng = random.Random(4)
    alphabet = "ab.-_/\\:\x00 é"
    names = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 7))) for _ in range(20000)]
    quick = [name for name in names if paths._PLAIN_RELATIVE.fullmatch(name)]
    assert len(quick) > 500
    for name in quick:
        assert paths.unsafe_path_problem(name) is None, name
    for name in ("..", "a/..", "../a", "/a", "a/", ".", "a/./b", "C:a", "é.jpg"):
        assert not paths._PLAIN_RELATIVE.fullmatch(name), name


@pytest.mark.parametrize("counts", [[20, "10", 20], [20, 2**32, 20], [20, True, 20], [20, 10.0, 20], [-1, 51]])
def test_rle_counts_outside_the_integers_from_0_to_2_32_are_refused(counts):
    obj = _with(OBJECT, segmentation={"counts": counts, "size": [5, 10]})
    with pytest.raises(InputError) as refused:
        read_task_document(_document([obj]), "f.json", "instances", "val", "f.json", ErrorPolicy())
    assert str(refused.value) == (
        "f.json: annotation id 7: field 'segmentation': invalid RLE: counts must be a string or a list of "
        "integers from 0 to 2^32-1"
    )


SEGMENT = {"id": 3, "category_id": 1, "bbox": [1, 1.5, 2, 2], "area": 4, "iscrowd": 0}


def test_tricky_panoptic_segments_read_the_same_both_ways(monkeypatch):
    segments: list[Any] = _key_and_bbox_variants(SEGMENT)
    for segment_id in (0, -1, 2**24 - 1, 2**24):
        segments.append(_with(SEGMENT, id=segment_id))
    segments.append({**copy.deepcopy(SEGMENT), "score": 0.5})
    for segment in segments:
        record = {"image_id": 5, "file_name": "a.png", "segments_info": [segment, _with(SEGMENT, id=9)]}
        plain = _read_panoptic(record)
        with monkeypatch.context() as patched:
            patched.setattr(reader, "plain_segment", lambda *args: None)
            step_by_step = _read_panoptic(record)
        assert plain == step_by_step, segment


def _read_panoptic(record: dict[str, Any]) -> tuple[Any, ...]:
    policy = ErrorPolicy(skip=True)
    document = _document([copy.deepcopy(record)])
    task_file = read_task_document(document, "f.json", "panoptic", "val", "f.json", policy)
    return (
        [(p.image_id, p.png_name, p.extra, p.hash, [list(s.items()) for s in p.segments]) for p in task_file.panoptic],
        [str(error) for error in policy.skipped],
    )


def test_a_plain_panoptic_segment_field_by_field():
    segment = _with(SEGMENT, bbox=[-0.0, 1.5, 2, 2], area=4.0)
    document = _document([{"image_id": 5, "file_name": "a.png", "segments_info": [segment]}])
    task_file = read_task_document(document, "f.json", "panoptic", "val", "f.json", ErrorPolicy())
    forms = INTEGER_BIT["bbox_w"] | INTEGER_BIT["bbox_h"] | INTEGER_BIT["bbox_x"] << NEGATIVE_ZERO_SHIFT
    assert list(task_file.panoptic[0].segments[0].items()) == [
        ("coco_id", 3), ("image_id", 5), ("kind", "mask"), ("number_forms", forms), ("hash", _digest(segment)),
        ("category_id", 1), ("bbox_x", 0.0), ("bbox_y", 1.5), ("bbox_w", 2.0), ("bbox_h", 2.0), ("area", 4.0),
        ("iscrowd", 0), ("extra", None),
    ]


# -- a list of records read at once (plain.py's batches) -----------------------------------

def _plain_variants(base: dict[str, Any], rng: random.Random, count: int) -> list[dict[str, Any]]:
    """`count` records of the common shape, each a little different: integers and floats, 0.0
    and -0.0 in the bbox and area, polygons and valid RLE masks (list counts, and pycocotools'
    strings), ids 1..count."""
    records = []
    for index in range(count):
        record = copy.deepcopy(base)
        record["id"] = index + 1
        if "bbox" in record:
            record["bbox"] = [rng.choice([0, 0.0, -0.0, 1, 2.5, 3]) for _ in range(4)]
            record["area"] = rng.choice([0, 0.0, -0.0, 4, 4.5])
            record["iscrowd"] = rng.choice([0, 1])
            record["segmentation"] = rng.choice([
                [[1, 1, 3.5, 1, 3, 3]], [[0.0, 0, 1, 0, 1, 1], [1, 1, 2, 2, 3, 3, 4, 4]],
                {"counts": "b1", "size": [5, 10]}, RLE_LIST, {"counts": "7210612NH02001N10N0", "size": [5, 10]},
                {"size": [5, 10], "counts": "123ON22N0202OL001011OON"},
            ])
        if "caption" in record:
            record["caption"] = f"caption {index}"
        records.append(record)
    return records


def _spy_batches(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each batch read by plain.py was read at once (True) or record by record."""
    from repo.coco import plain

    outcomes: list[bool] = []
    for name in ("_object_batch", "_caption_batch", "_label_batch", "_image_batch"):
        def spy(*args: Any, _real: Any = getattr(plain, name), **kwargs: Any) -> Any:
            result = _real(*args, **kwargs)
            outcomes.append(result is not None)
            return result
        monkeypatch.setattr(plain, name, spy)
    return outcomes


@pytest.mark.parametrize("task,base", [
    ("instances", OBJECT), ("stuff", _with(OBJECT, segmentation=RLE_STRING)),
    ("person_keypoints", KEYPOINTS), ("captions", CAPTION), ("labels", LABEL),
])
def test_a_file_of_plain_records_reads_the_same_at_once(monkeypatch, task, base):
    """Many records of the common shape (one with a bad RLE string among them, read step by
    step) and images with keys of their own, nested objects too: read at once, as step by step."""
    rng = random.Random(len(task))
    records = _plain_variants(base, rng, 200)
    if "bbox" in base:
        records[150]["segmentation"] = {"counts": "0:1", "size": [5, 10]}  # covers 51 pixels, not 50
    images = [copy.deepcopy(IMAGE), {"id": 6, "file_name": "b.jpg", "width": 3, "height": 3, "license": 1,
                                     "meta": {"a": {"b": [1, {"c": 2}]}}}]
    with monkeypatch.context() as patched:
        outcomes = _spy_batches(patched)
        plain, step_by_step = _read_both(patched, _document(records, images), task)
    assert outcomes == [True, True]
    assert plain == step_by_step
    assert len(plain[1]) == 200 - ("bbox" in base) and len(plain[2]) == ("bbox" in base)


@pytest.mark.parametrize("task,base", [
    ("instances", OBJECT), ("person_keypoints", KEYPOINTS), ("captions", CAPTION), ("labels", LABEL),
])
def test_records_read_at_once_count_the_keys_of_their_objects(task, base):
    """The count the duplicate-key check trusts instead of walking the records: exactly the
    keys of every object in them, as a walk over the parsed value finds."""
    from repo.model.jsonio import parsed_key_count

    document = _document(_plain_variants(base, random.Random(3), 300), [
        copy.deepcopy(IMAGE), {**copy.deepcopy(IMAGE), "id": 6, "file_name": "b.jpg", "x": [{"y": {"z": 1}}, {}]},
    ])
    reader_ = reader._FileReader("f.json", task, ErrorPolicy())
    reader_.read(document, "val", "f.json")
    assert reader_.counted == {
        id(document["images"]): parsed_key_count(document["images"]),
        id(document["annotations"]): parsed_key_count(document["annotations"]),
    }


def test_a_repeated_key_in_a_file_read_at_once_is_its_first_problem(tmp_path):
    """Records read at once are checked for repeated keys after they are read: the repeat is
    still the file's error, before a bad record of the same file, under either policy."""
    records = _plain_variants(OBJECT, random.Random(5), 50)
    records[40]["category_id"] = 99  # no such category
    text = json.dumps(_document(records)).replace('"id": 31, ', '"id": 31, "id": 31, ', 1)
    path = tmp_path / "instances_val.json"
    path.write_text(text)
    for skip in (False, True):
        with pytest.raises(InputError) as refused:
            reader.read_task_file(path, "instances_val.json", "instances", "val", ErrorPolicy(skip=skip))
        assert str(refused.value) == (
            "instances_val.json: annotations[30]: field 'id': duplicate key: the object holds it twice, and JSON "
            "readers disagree on which value counts"
        )


def test_digests_of_a_list_are_those_of_each_record():
    """Each digest of a list as `record_hash` gives it, whatever the records' strings hold
    (among them the marker an earlier version cut a list's text at, and pieces of it)."""
    from repo.model import hashing

    marker = "\x00record\x00"
    records: list[Any] = [copy.deepcopy(OBJECT), copy.deepcopy(CAPTION), {}, {"a": [1, marker, 2]}]
    for text in (marker, f'",{marker}', f"{marker}\",\"", '"\\u0000record\\u0000",', f"}},{marker},{{"):
        records.append({"caption": text, "id": 1})
        records.append({text: [text, {text: text}]})
    digests = hashing.record_hashes(records)
    assert digests == [hashing.record_hash(record) for record in records] == [_digest(r) for r in records]
    assert hashing.record_hashes([{"a": 2**64}]) is None and hashing.record_hashes([[1]]) is None
    assert hashing.record_hashes([]) == []
