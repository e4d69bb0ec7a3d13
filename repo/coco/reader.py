"""Reading one COCO annotation file into validated records.

Every check names the file, the record (by its id where it has a valid one, else by its
position, e.g. `annotations[3]`) and the field, and says what was expected. A bad record is
reported to the import's ErrorPolicy, which either fails the import or skips the record.
Structural problems of the file itself (not an object, a section of the wrong type) always
fail: there is nothing sound to keep from such a file.

Validation is strict where a value means something to COCO tools (ids, sizes, geometry) and
lenient elsewhere: keys COCO does not define, and optional fields that are `null`, are kept
verbatim in `extra` and written back unchanged. The one limit on free-form values is their
nesting (at most jsonio.MAX_DEPTH levels), so that every stored value can be written back.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol, TypeVar

from repo.coco.plain import (
    EXACT_FLOAT_LIMIT,
    INT32_MAX,
    INT64_MAX,
    INT64_MIN,
    PANOPTIC_ID_LIMIT,
    plain_annotation_batch,
    plain_images,
    plain_segment,
)
from repo.coco.rle import RleError, check_runs, compress_runs, decode_string
from repo.coco.tasks import LABELLED_TASKS
from repo.errors import InputError
from repo.model.hashing import NestingError, record_hash, too_deep
from repo.model.chunked_json import ChunkedObject, ChunkError, read_chunked
from repo.model.jsonio import MAX_DEPTH, describe, load_json_file, parse_json_file, refuse_duplicate_key
from repo.model.paths import unsafe_path_problem
from repo.model.policy import ErrorPolicy
from repo.model.records import (
    BBOX_FIELDS,
    INTEGER_BIT,
    NEGATIVE_ZERO_SHIFT,
    RLE_LIST,
    RLE_STRING,
    AnnotationRecord,
    CategoryRecord,
    FilePart,
    ImageRecord,
    PanopticRecord,
    TaskFile,
    WindowDigests,
)
from repo.model.windows import LastWindows

_UINT32_LIMIT = 1 << 32
_COCO_ID, _FILE_NAME = itemgetter("coco_id"), itemgetter("file_name")
R = TypeVar("R")

_CATEGORIES_REQUIRED = LABELLED_TASKS
# Files larger than this are read in windows (see repo.model.chunked_json): parsing one whole
# takes ten times its size in memory, which for a 10 MB instances file is more than all of
# dsrepo's libraries take. Smaller ones are parsed whole, in one step.
WINDOWED_BYTES = int(os.environ.get("DSREPO_WINDOWED_JSON_BYTES", 1 << 20))
_WINDOWED_SECTIONS = frozenset({"images", "annotations"})
_SECTIONS = ("info", "licenses", "categories", "images", "annotations")

_IMAGE_KEYS = frozenset({"id", "file_name", "width", "height"})
_CATEGORY_KEYS = frozenset({"id", "name", "supercategory"})
_RLE_KEYS = frozenset({"counts", "size"})
_TOO_DEEP = f"lists and objects nest more than {MAX_DEPTH} levels deep; dsrepo stores at most {MAX_DEPTH}"


def is_int(value: Any) -> bool:
    return type(value) is int


def is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


_NUMBER_TYPES = frozenset({int, float})
_INTEGERS_ONLY = frozenset({int}).issuperset


def all_numbers(values: list[Any]) -> bool:
    """Every value is a JSON number (not a boolean): one pass in C over long coordinate lists."""
    return _NUMBER_TYPES.issuperset(map(type, values))


def text_problem(value: str) -> str | None:
    """Why a string cannot go into a text column (PostgreSQL refuses NUL characters), or None."""
    return "contains a NUL character, which dsrepo cannot store" if "\x00" in value else None


def read_task_file(
    path: Path, shown_as: str, task: str, subset: str, policy: ErrorPolicy, last: LastWindows | None = None
) -> TaskFile:
    """A file validated; a big one in windows, of which those `last` knows are not read again."""
    if path.is_file() and path.stat().st_size > WINDOWED_BYTES:
        task_file = _read_in_windows(path, shown_as, task, subset, policy, last)
        if task_file is not None:
            return task_file
    data, document = parse_json_file(path, shown_as)
    reader = _FileReader(shown_as, task, policy)
    try:
        task_file = reader.read(document, subset, path.name)
    except InputError:
        refuse_duplicate_key(data, document, shown_as)  # a repeated key is the file's first problem
        raise
    # Checked after the records, whose reading counted their keys (see plain.py); a file with
    # a repeated key had its records read in vain, and is refused as before.
    refuse_duplicate_key(data, document, shown_as, reader.counted)
    return task_file


def _read_in_windows(
    path: Path, shown_as: str, task: str, subset: str, policy: ErrorPolicy, last: LastWindows | None
) -> TaskFile | None:
    """A big file with its images and annotations in `parts`, or None for one that is not a
    valid JSON object with valid sections: the whole-file reader names its problem."""
    file = path.open("rb")
    try:
        chunked = read_chunked(file, _WINDOWED_SECTIONS)
        reader = _FileReader(shown_as, task, policy)
        task_file = reader.read_header(chunked.document, subset, path.name)
    except (ChunkError, InputError):
        file.close()
        return None
    task_file.parts = _parts_or_whole_file_error(reader, chunked, task_file, path, last)
    return task_file


def _parts_or_whole_file_error(
    reader: _FileReader, chunked: ChunkedObject, task_file: TaskFile, path: Path, last: LastWindows | None
) -> Iterator[FilePart]:
    """The file's parts; on the first problem (bad JSON, a bad record under `fail`) the whole
    file is read the usual way, which fails with the message it always gave (its first problem
    in the whole-file reader's order, not necessarily the one met here). The import rolls back."""
    with chunked.file:
        try:
            yield from reader.read_windows(chunked, task_file, last)
        except (ChunkError, InputError) as problem:
            document = load_json_file(path, reader.file)
            read_task_document(document, reader.file, task_file.task, task_file.subset, task_file.name, reader.policy)
            if isinstance(problem, InputError):
                raise
            raise reader.error(None, None, f"not valid JSON ({problem})") from None


def refuse_first_record_problem(path: Path, shown_as: str, task_file: TaskFile) -> None:
    """Raise the first problem the whole-file reader finds in the records of a file read in
    parts, if it finds one: a part's PNG may fail before a later part's records are checked,
    where a whole-file import reports the record first."""
    document = load_json_file(path, shown_as)
    read_task_document(document, shown_as, task_file.task, task_file.subset, task_file.name, ErrorPolicy(skip=False))


def read_task_document(
    document: Any, shown_as: str, task: str, subset: str, name: str, policy: ErrorPolicy
) -> TaskFile:
    """Validate an already parsed file (`merge` builds its files in memory)."""
    return _FileReader(shown_as, task, policy).read(document, subset, name)


class _Check(Protocol[R]):
    """Refuses a record that clashes with those before it (a repeated id)."""

    def __call__(self, record: R) -> None: ...

    def admit_all(self, records: list[R]) -> bool:
        """Take every one of `records` at once if none clashes, else take none and say False."""
        ...


class _Unique:
    """Refuses a second record with the same value of `field` (`what` names the record by it)."""

    def __init__(self, error: Callable[[str | None, str | None, str], InputError], what: str, field: str, problem: str):
        self.error, self.what, self.field, self.problem = error, what, field, problem
        self.seen: set[Any] = set()

    def value(self, record: Any) -> Any:
        return record[self.field] if isinstance(record, dict) else getattr(record, self.field)

    def __call__(self, record: Any) -> None:
        value = self.value(record)
        if value in self.seen:
            raise self.error(self.what.format(value), "id" if self.field == "coco_id" else self.field, self.problem)
        self.seen.add(value)

    def admit_all(self, records: list[Any]) -> bool:
        values = list(map(itemgetter(self.field), records))  # records read at once are dicts
        if len(set(values)) != len(values) or not self.seen.isdisjoint(values):
            return False
        self.seen.update(values)
        return True


class _UniqueImages:
    """Refuses an image whose id or file name an earlier one has."""

    def __init__(self, error: Callable[[str | None, str | None, str], InputError]):
        self.error = error
        self.ids: set[int] = set()
        self.names: dict[str, int] = {}

    def __call__(self, record: ImageRecord) -> None:
        where = f"image id {record['coco_id']}"
        if record["coco_id"] in self.ids:
            raise self.error(where, "id", "the id is listed twice")
        other = self.names.get(record["file_name"])
        if other is not None:
            raise self.error(
                where, "file_name", f"{describe(record['file_name'])} is also the file of image id {other}"
            )
        self.ids.add(record["coco_id"])
        self.names[record["file_name"]] = record["coco_id"]

    def admit_all(self, records: list[ImageRecord]) -> bool:
        ids = list(map(_COCO_ID, records))
        names = list(map(_FILE_NAME, records))
        if len(set(ids)) != len(ids) or not self.ids.isdisjoint(ids):
            return False
        if len(set(names)) != len(names) or not self.names.keys().isdisjoint(names):
            return False
        self.ids.update(ids)
        self.names.update(zip(names, ids))
        return True


class _FileReader:
    def __init__(self, shown_as: str, task: str, policy: ErrorPolicy):
        self.file = shown_as
        self.task = task
        self.policy = policy
        # The keys of the objects of each record list read in one go, by the list's id.
        self.counted: dict[int, int] = {}

    def error(self, record: str | None, field: str | None, problem: str) -> InputError:
        return InputError(self.file, record, field, problem)

    def _hash(self, obj: dict[str, Any], where: str) -> bytes:
        """The record's content hash; a record too deep to store is an error of its deepest field."""
        try:
            return record_hash(obj)
        except NestingError:
            field = next((key for key, value in obj.items() if too_deep([value])), None)
            raise self.error(where, field, _TOO_DEEP) from None

    # -- the file --------------------------------------------------------------------------

    def read(self, document: Any, subset: str, name: str) -> TaskFile:
        task_file = self.read_header(document, subset, name)
        task_file.images = self._collect(
            document["images"], "images", self._image, self._image_check(), plain=plain_images
        )
        image_ids = {image["coco_id"]: image for image in task_file.images}
        known_categories, keypoint_counts = _category_facts(task_file.categories)
        raw_annotations = document.get("annotations", [])
        if self.task == "panoptic":
            task_file.panoptic = self._panoptic(raw_annotations, image_ids, known_categories)
        else:
            task_file.annotations = self._annotations(raw_annotations, image_ids, known_categories, keypoint_counts)
        return task_file

    def read_header(self, document: Any, subset: str, name: str) -> TaskFile:
        """The file's checks and records but for its images and annotations."""
        if not isinstance(document, dict):
            raise self.error(None, None, f"the top-level value is {describe(document)}, expected an object")
        self._check_sections(document)
        self._check_nesting(document)
        categories = self._categories(document.get("categories", []))
        extra = {key: value for key, value in document.items() if key not in _SECTIONS}
        return TaskFile(
            task=self.task, subset=subset, name=name, layout=list(document),
            info=document.get("info"), licenses=document.get("licenses"), extra=extra or None,
            categories=categories, images=[], annotations=[], panoptic=[],
        )

    def read_windows(self, chunked: ChunkedObject, task_file: TaskFile, last: LastWindows | None) -> Iterator[FilePart]:
        """The images, then the annotations, of a file read in windows, checked as `read`
        checks them; of each image only what its annotations are checked against is kept.
        An annotations window `last` knows, in a file whose other bytes are those last read,
        is taken from the stored rows instead (see repo.model.windows)."""
        reported = len(self.policy.skipped)
        check = self._image_check()
        sizes: dict[int, ImageRecord] = {}
        first = 0
        for window in chunked.windows("images"):
            raw = window.elements
            images = self._collect(raw, "images", self._image, check, first, plain_images)
            window.refuse_repeated_keys(self.counted.pop(id(raw), None))
            first += len(raw)
            for image in images:
                kept = {"coco_id": image["coco_id"], "width": image["width"], "height": image["height"]}
                sizes[image["coco_id"]] = kept  # type: ignore[assignment]
            yield FilePart(images=images)
        known_categories, keypoint_counts = _category_facts(task_file.categories)
        first = 0
        if self.task == "panoptic":
            unique_images = self._unique_panoptic_images()
            for window in chunked.windows("annotations"):
                records = self._panoptic(window.elements, sizes, known_categories, unique_images, first)
                window.refuse_repeated_keys()
                yield FilePart(panoptic=records)
                first += len(window.elements)
            return
        parse, check, plain = self._annotation_steps(sizes, known_categories, keypoint_counts)
        digests = WindowDigests(chunked.frame_digest("annotations")) if "annotations" in chunked.spans else None
        if digests is None or self.policy.skip or (last is not None and last.frame != digests.frame):
            last = None  # under `skip`, a window taken could hide which of two records to drop
        for window in chunked.windows("annotations"):
            digest = window.digest
            taken = last.take(digest) if last is not None else None
            if taken is not None:
                if not check.admit_all(taken):  # an id repeated in a window read: reading it all names it
                    raise self.error(None, "annotations", "an annotation id is listed twice")
                annotations, count = taken, len(taken)
            else:
                raw = window.elements
                self._check_image_info(raw)
                annotations, count = self._collect(raw, "annotations", parse, check, first, plain), len(raw)
                window.refuse_repeated_keys(self.counted.pop(id(raw), None))
            if digests is not None:
                digests.windows.append((digest, count))
            yield FilePart(annotations=annotations)
            first += count
        if len(self.policy.skipped) == reported:
            task_file.windows = digests

    def _check_sections(self, document: dict[str, Any]) -> None:
        required = ["images"]
        if self.task != "image_info":
            required.append("annotations")
        if self.task in _CATEGORIES_REQUIRED:
            required.append("categories")
        for key in required:
            if key not in document:
                raise self.error(None, key, f"the section is missing; a {self.task} file needs it")
        for key in ("images", "annotations", "categories"):
            if key in document and not isinstance(document[key], list):
                raise self.error(None, key, f"the section is {describe(document[key])}, expected a list")

    def _check_nesting(self, document: dict[str, Any]) -> None:
        """Top-level values besides the record lists are stored as they are (records are checked
        as they are hashed), inside the file's header record: `{"info": value}` for info and
        licenses, `{"extra": {key: value}}` for keys COCO does not define. The header must fit
        in MAX_DEPTH levels, so `info` may nest MAX_DEPTH - 1 levels, other keys MAX_DEPTH - 2."""
        for key, value in document.items():
            if key in ("images", "annotations", "categories"):
                continue
            levels = 1 if key in ("info", "licenses") else 2  # the header's levels around it
            in_header = value
            for _ in range(levels):
                in_header = [in_header]
            if too_deep(in_header):
                most = MAX_DEPTH - levels
                raise self.error(
                    None, key, f"lists and objects nest more than {most} levels deep; dsrepo stores at most {most} here"
                )

    def _collect(
        self, raw: list[Any], section: str, parse: Callable[[Any, str], R], check: _Check[R],
        first: int = 0, plain: Callable[[list[Any]], tuple[list[R | None], int | None]] | None = None,
    ) -> list[R]:
        """Parse each element of a section (`raw` starts at index `first` of it); `check`
        refuses one that clashes with those before (a repeated id). A bad element goes to the
        error policy, which may skip it. `plain` reads the elements of the common well-formed
        shape in one go (None for any other) and counts the keys of their objects; `parse`
        reads an element step by step and names its first problem."""
        if plain is None:
            prebuilt: list[R | None] = [None] * len(raw)
        else:
            prebuilt, keys = plain(raw)
            if keys is not None:
                self.counted[id(raw)] = keys
            if None not in prebuilt and check.admit_all(prebuilt):  # type: ignore[arg-type]
                return prebuilt  # type: ignore[return-value]
        records: list[R] = []
        for index, (obj, record) in enumerate(zip(raw, prebuilt), first):
            try:
                if record is None:
                    record = parse(obj, f"{section}[{index}]")
                check(record)
                records.append(record)
            except InputError as error:
                self.policy.report(error)
        return records

    def _unique(self, what: str, field: str, problem: str) -> _Unique:
        """A `check` refusing a second record with the same value of `field`."""
        return _Unique(self.error, what, field, problem)

    # -- categories and images -------------------------------------------------------------

    def _categories(self, raw: list[Any]) -> list[CategoryRecord]:
        return self._collect(
            raw, "categories", self._category, self._unique("category id {}", "coco_id", "the id is listed twice")
        )

    def _category(self, obj: Any, where: str) -> CategoryRecord:
        if not isinstance(obj, dict):
            raise self.error(where, None, f"expected an object, got {describe(obj)}")
        coco_id = self._id(obj, where, "id")
        where = f"category id {coco_id}"
        name = obj.get("name")
        if not isinstance(name, str):
            raise self.error(where, "name", f"expected a string, got {describe(name) if 'name' in obj else 'nothing'}")
        supercategory = obj.get("supercategory")
        if supercategory is not None and not isinstance(supercategory, str):
            raise self.error(where, "supercategory", f"expected a string, got {describe(supercategory)}")
        for key, value in (("name", name), ("supercategory", supercategory)):
            if value is not None and text_problem(value):
                raise self.error(where, key, text_problem(value))  # type: ignore[arg-type]
        keypoints = obj.get("keypoints")
        if "keypoints" in obj and not isinstance(keypoints, list):
            raise self.error(where, "keypoints", f"expected a list of names, got {describe(keypoints)}")
        lifted = _CATEGORY_KEYS if supercategory is not None else _CATEGORY_KEYS - {"supercategory"}
        extra = {k: v for k, v in obj.items() if k not in lifted}
        return CategoryRecord(
            coco_id=coco_id, name=name, supercategory=supercategory, extra=extra or None,
            hash=self._hash(obj, where),
        )

    def _image_check(self) -> _UniqueImages:
        """A `check` refusing an image whose id or file name an earlier one has."""
        return _UniqueImages(self.error)

    def _image(self, obj: Any, where: str) -> ImageRecord:
        if not isinstance(obj, dict):
            raise self.error(where, None, f"expected an object, got {describe(obj)}")
        coco_id = self._id(obj, where, "id")
        where = f"image id {coco_id}"
        file_name = obj.get("file_name")
        if not isinstance(file_name, str):
            got = describe(file_name) if "file_name" in obj else "nothing"
            raise self.error(where, "file_name", f"expected a string, got {got}")
        problem = unsafe_path_problem(file_name)
        if problem:
            raise self.error(where, "file_name", problem)
        sizes = []
        for key in ("width", "height"):
            value = obj.get(key)
            if not is_int(value) or not 0 < value <= INT32_MAX:
                got = describe(value) if key in obj else "nothing"
                raise self.error(
                    where, key,
                    f"expected a positive integer below 2^31, got {got} (dsrepo needs every image's size)",
                )
            sizes.append(value)
        extra = {k: v for k, v in obj.items() if k not in _IMAGE_KEYS}
        return ImageRecord(
            coco_id=coco_id, file_name=file_name, width=sizes[0], height=sizes[1],
            extra=extra or None, hash=self._hash(obj, where),
        )

    # -- annotations -----------------------------------------------------------------------

    def _annotations(
        self,
        raw: list[Any],
        images: dict[int, ImageRecord],
        categories: set[int] | None,
        keypoint_counts: dict[int, int],
    ) -> list[AnnotationRecord]:
        self._check_image_info(raw)
        parse, check, plain = self._annotation_steps(images, categories, keypoint_counts)
        return self._collect(raw, "annotations", parse, check, plain=plain)

    def _check_image_info(self, raw: list[Any]) -> None:
        if self.task == "image_info" and raw:
            raise self.error(
                "annotations[0]", None, "image_info files list images only; their 'annotations' must be empty"
            )

    def _annotation_steps(
        self, images: dict[int, ImageRecord], categories: set[int] | None, keypoint_counts: dict[int, int],
    ) -> tuple[
        Callable[[Any, str], AnnotationRecord], _Check[AnnotationRecord],
        Callable[[list[Any]], tuple[list[AnnotationRecord | None], int | None]],
    ]:
        """How `_collect` parses, checks and reads in one go the annotations of this file's task."""
        parse = {"captions": self._caption, "labels": self._label}.get(self.task, self._object)
        return (
            lambda obj, where: parse(obj, where, images, categories, keypoint_counts),
            self._unique("annotation id {}", "coco_id", "the id is listed twice"),
            plain_annotation_batch(self.task, images, categories, keypoint_counts, self._rle),
        )

    def _common(
        self, obj: Any, where: str, images: dict[int, ImageRecord], lifted: set[str]
    ) -> tuple[AnnotationRecord, str, ImageRecord]:
        """The fields every annotation record has: id and image_id."""
        if not isinstance(obj, dict):
            raise self.error(where, None, f"expected an object, got {describe(obj)}")
        coco_id = self._id(obj, where, "id")
        where = f"annotation id {coco_id}"
        image_id = obj.get("image_id")
        image = self._image_of(obj, where, images)
        lifted.update(("id", "image_id"))
        record = AnnotationRecord(coco_id=coco_id, image_id=image_id, number_forms=0, hash=self._hash(obj, where))
        return record, where, image

    def _image_of(self, obj: dict[str, Any], where: str, images: dict[int, ImageRecord]) -> ImageRecord:
        if "image_id" not in obj:
            raise self.error(where, "image_id", "the field is missing")
        image_id = obj["image_id"]
        if not is_int(image_id):
            raise self.error(where, "image_id", f"expected an integer, got {describe(image_id)}")
        image = images.get(image_id)
        if image is None:
            raise self.error(where, "image_id", f"no image in this file has id {image_id}")
        return image

    def _category_of(
        self, obj: dict[str, Any], where: str, categories: set[int] | None, field: str = "category_id"
    ) -> int:
        if field not in obj:
            raise self.error(where, field, "the field is missing")
        category_id = obj[field]
        if not is_int(category_id):
            raise self.error(where, field, f"expected an integer, got {describe(category_id)}")
        if not INT64_MIN <= category_id <= INT64_MAX:  # checked here too: a file may list no categories
            raise self.error(where, field, f"the id {category_id} does not fit in 64 bits")
        if categories is not None and category_id not in categories:
            raise self.error(where, field, f"no category in this file has id {category_id}")
        return category_id

    def _object(
        self, obj: Any, where: str, images: dict[int, ImageRecord], categories: set[int] | None,
        keypoint_counts: dict[int, int],
    ) -> AnnotationRecord:
        """An instances, stuff or person_keypoints record."""
        lifted: set[str] = {"category_id"}
        record, where, image = self._common(obj, where, images, lifted)
        record["category_id"] = self._category_of(obj, where, categories)
        self._geometry(obj, where, image, record, lifted)
        kind = "mask" if record.get("rle") is not None else "polygon" if record.get("polygons") else "bbox"
        if self.task == "person_keypoints":
            kind = "points"
            self._keypoints(obj, where, record, keypoint_counts.get(record["category_id"], 0), lifted)
        record["kind"] = kind
        return self._finish(obj, where, record, lifted)

    def _caption(
        self, obj: Any, where: str, images: dict[int, ImageRecord], categories: set[int] | None,
        keypoint_counts: dict[int, int],
    ) -> AnnotationRecord:
        lifted: set[str] = {"caption"}
        record, where, _ = self._common(obj, where, images, lifted)
        caption = obj.get("caption")
        if not isinstance(caption, str):
            got = describe(caption) if "caption" in obj else "nothing"
            raise self.error(where, "caption", f"expected a string, got {got}")
        if text_problem(caption):  # PostgreSQL's text columns refuse NUL: keep it verbatim in `extra`
            lifted.discard("caption")
        else:
            record["caption"] = caption
        record["kind"] = "caption"
        return self._finish(obj, where, record, lifted)

    def _label(
        self, obj: Any, where: str, images: dict[int, ImageRecord], categories: set[int] | None,
        keypoint_counts: dict[int, int],
    ) -> AnnotationRecord:
        lifted: set[str] = {"category_id"}
        record, where, _ = self._common(obj, where, images, lifted)
        record["category_id"] = self._category_of(obj, where, categories)
        record["kind"] = "label"
        return self._finish(obj, where, record, lifted)

    def _score_and_attributes(
        self, obj: dict[str, Any], where: str, record: AnnotationRecord, lifted: set[str]
    ) -> None:
        """score and attributes, which any task may carry; null values stay in `extra`."""
        if obj.get("score") is not None:
            self._number(obj, where, "score", record, "score")
            lifted.add("score")
        attributes = obj.get("attributes")
        if isinstance(attributes, dict):
            record["attributes"] = attributes
            lifted.add("attributes")

    def _finish(self, obj: dict[str, Any], where: str, record: AnnotationRecord, lifted: set[str]) -> AnnotationRecord:
        """score and attributes, then every key not lifted into a field goes to `extra`."""
        self._score_and_attributes(obj, where, record, lifted)
        extra = {k: v for k, v in obj.items() if k not in lifted}
        record["extra"] = extra or None
        return record

    # -- geometry ---------------------------------------------------------------------------

    def _geometry(
        self, obj: dict[str, Any], where: str, image: ImageRecord, record: AnnotationRecord,
        lifted: set[str],
    ) -> None:
        """bbox, area, iscrowd and segmentation of an object record."""
        if obj.get("bbox") is not None:
            self._bbox(obj["bbox"], where, record)
            lifted.add("bbox")
        if obj.get("area") is not None:
            self._number(obj, where, "area", record, "area")
            lifted.add("area")
        if obj.get("iscrowd") is not None:
            record["iscrowd"] = self._flag(obj, where, "iscrowd")
            lifted.add("iscrowd")
        segmentation = obj.get("segmentation")
        if segmentation is not None:
            self._segmentation(segmentation, where, image, record)
            if not (isinstance(segmentation, dict) and segmentation.keys() - _RLE_KEYS):
                lifted.add("segmentation")
            # else an RLE object with keys of its own: its mask is in the columns, and the
            # object stays in `extra` as it was, so that it is written back with those keys.

    def _bbox(self, bbox: Any, where: str, record: AnnotationRecord) -> None:
        if not isinstance(bbox, list) or len(bbox) != 4 or not all_numbers(bbox):
            raise self.error(where, "bbox", f"expected 4 numbers [x, y, width, height], got {describe(bbox)}")
        for name, value in zip(BBOX_FIELDS, bbox):
            self._store_number(value, where, "bbox", record, name)

    def _number(self, obj: dict[str, Any], where: str, key: str, record: AnnotationRecord, name: str) -> None:
        value = obj[key]
        if not is_number(value):
            raise self.error(where, key, f"expected a number, got {describe(value)}")
        self._store_number(value, where, key, record, name)

    def _store_number(self, value: int | float, where: str, key: str, record: AnnotationRecord, name: str) -> None:
        if type(value) is int:
            if abs(value) > EXACT_FLOAT_LIMIT:
                raise self.error(where, key, f"the integer {value} is too large (at most 2^53)")
            record["number_forms"] |= INTEGER_BIT[name]
        elif value == 0.0 and math.copysign(1.0, value) < 0:
            record["number_forms"] |= INTEGER_BIT[name] << NEGATIVE_ZERO_SHIFT
        record[name] = float(value)  # type: ignore[literal-required]

    def _flag(self, obj: dict[str, Any], where: str, key: str) -> int:
        value = obj[key]
        if not is_int(value) or value not in (0, 1):
            raise self.error(where, key, f"expected 0 or 1, got {describe(value)}")
        return value

    def _segmentation(self, value: Any, where: str, image: ImageRecord, record: AnnotationRecord) -> None:
        if isinstance(value, list):
            for index, part in enumerate(value):
                if not isinstance(part, list) or not all_numbers(part):
                    raise self.error(
                        where, "segmentation",
                        f"polygon part {index} is {describe(part)}, expected a list of numbers",
                    )
                if len(part) % 2 or len(part) < 6:
                    raise self.error(
                        where, "segmentation",
                        f"polygon part {index} has {len(part)} coordinates, expected an even "
                        "number and at least 6 (3 points)",
                    )
            record["polygons"] = value
            return
        if not isinstance(value, dict):
            raise self.error(
                where, "segmentation", f"expected a list of polygons or an RLE object, got {describe(value)}"
            )
        record["rle"], record["rle_form"] = self._rle(value, where, image)

    def _rle(self, value: dict[str, Any], where: str, image: ImageRecord) -> tuple[bytes, str]:
        if "counts" not in value or "size" not in value:
            raise self.error(
                where, "segmentation",
                f"an RLE object needs the keys 'counts' and 'size', got {sorted(value)}",
            )
        size, counts = value["size"], value["counts"]
        expected = [image["height"], image["width"]]
        if size != expected or not all(is_int(v) for v in size):
            raise self.error(
                where, "segmentation",
                f"RLE size {describe(size) if not isinstance(size, list) else size} differs from the "
                f"image's [height, width] = {expected}",
            )
        height, width = expected
        try:
            if isinstance(counts, str):
                if not counts.isascii():
                    raise RleError("counts string holds a character outside the RLE alphabet")
                encoded = counts.encode("ascii")
                check_runs(decode_string(encoded), height, width)
                return encoded, RLE_STRING
            if isinstance(counts, list):
                integers = _INTEGERS_ONLY(map(type, counts))
                if not integers or (counts and not 0 <= min(counts) <= max(counts) < _UINT32_LIMIT):
                    raise RleError("counts must be a string or a list of integers from 0 to 2^32-1")
                check_runs(counts, height, width)
                return compress_runs(counts, height, width), RLE_LIST
            raise RleError(f"counts must be a string or a list of integers, got {describe(counts)}")
        except RleError as exc:
            raise self.error(where, "segmentation", f"invalid RLE: {exc}") from None

    def _keypoints(
        self, obj: dict[str, Any], where: str, record: AnnotationRecord, expected_points: int,
        lifted: set[str],
    ) -> None:
        keypoints = obj.get("keypoints")
        if keypoints is not None:
            if not isinstance(keypoints, list) or not all_numbers(keypoints):
                raise self.error(where, "keypoints", f"expected a list of numbers, got {describe(keypoints)}")
            if expected_points and len(keypoints) != 3 * expected_points:
                raise self.error(
                    where, "keypoints",
                    f"expected {3 * expected_points} numbers (3 x the category's {expected_points} "
                    f"keypoints), got {len(keypoints)}",
                )
            if len(keypoints) % 3:
                raise self.error(
                    where, "keypoints", f"expected x, y, visibility triplets, got {len(keypoints)} numbers"
                )
            record["keypoints"] = keypoints
            lifted.add("keypoints")
        num = obj.get("num_keypoints")
        if num is not None:
            if not is_int(num) or not 0 <= num <= INT32_MAX:
                raise self.error(where, "num_keypoints", f"expected a non-negative integer, got {describe(num)}")
            record["num_keypoints"] = num
            lifted.add("num_keypoints")

    # -- panoptic ---------------------------------------------------------------------------

    def _panoptic(
        self, raw: list[Any], images: dict[int, ImageRecord], categories: set[int] | None,
        check: _Unique | None = None, first: int = 0,
    ) -> list[PanopticRecord]:
        """The panoptic records of `raw` (from index `first` of the file's annotations); `check`
        refuses a second record of an image (across a big file's windows: one for the file)."""
        return self._collect(
            raw, "annotations", lambda obj, where: self._panoptic_record(obj, where, images, categories),
            check or self._unique_panoptic_images(), first,
        )

    def _unique_panoptic_images(self) -> _Unique:
        return self._unique("annotation for image id {}", "image_id", "the image has a second panoptic record")

    def _panoptic_record(
        self, obj: Any, where: str, images: dict[int, ImageRecord], categories: set[int] | None
    ) -> PanopticRecord:
        if not isinstance(obj, dict):
            raise self.error(where, None, f"expected an object, got {describe(obj)}")
        image = self._image_of(obj, where, images)
        where = f"annotation for image id {image['coco_id']}"
        png_name = obj.get("file_name")
        if not isinstance(png_name, str):
            got = describe(png_name) if "file_name" in obj else "nothing"
            raise self.error(where, "file_name", f"expected the PNG's file name, got {got}")
        problem = unsafe_path_problem(png_name)
        if problem:
            raise self.error(where, "file_name", problem)
        segments_info = obj.get("segments_info")
        if not isinstance(segments_info, list):
            got = describe(segments_info) if "segments_info" in obj else "nothing"
            raise self.error(where, "segments_info", f"expected a list, got {got}")
        segments: list[AnnotationRecord] = []
        seen: set[int] = set()
        for index, segment in enumerate(segments_info):
            record = plain_segment(segment, image["coco_id"], categories)
            if record is None:
                record = self._segment(segment, f"{where}, segments_info[{index}]", image, categories)
            if record["coco_id"] in seen:
                raise self.error(
                    f"segment id {record['coco_id']} of image id {image['coco_id']}", "id",
                    "the segment is listed twice (segments must not overlap)",
                )
            seen.add(record["coco_id"])
            segments.append(record)
        extra = {k: v for k, v in obj.items() if k not in ("image_id", "file_name", "segments_info")}
        return PanopticRecord(
            image_id=image["coco_id"], png_name=png_name, extra=extra or None,
            hash=self._hash(obj, where), segments=segments,
        )

    def _segment(
        self, obj: Any, where: str, image: ImageRecord, categories: set[int] | None
    ) -> AnnotationRecord:
        if not isinstance(obj, dict):
            raise self.error(where, None, f"expected an object, got {describe(obj)}")
        segment_id = self._id(obj, where, "id")
        where = f"segment id {segment_id} of image id {image['coco_id']}"
        if not 0 < segment_id < PANOPTIC_ID_LIMIT:
            raise self.error(
                where, "id", "expected 1 to 2^24-1 (a PNG pixel holds 24 bits; 0 marks void pixels)"
            )
        lifted = {"id", "category_id"}
        record = AnnotationRecord(
            coco_id=segment_id, image_id=image["coco_id"], kind="mask", number_forms=0,
            hash=self._hash(obj, where),
        )
        record["category_id"] = self._category_of(obj, where, categories)
        if obj.get("bbox") is not None:
            self._bbox(obj["bbox"], where, record)
            lifted.add("bbox")
        if obj.get("area") is not None:
            self._number(obj, where, "area", record, "area")
            lifted.add("area")
        if obj.get("iscrowd") is not None:
            record["iscrowd"] = self._flag(obj, where, "iscrowd")
            lifted.add("iscrowd")
        return self._finish(obj, where, record, lifted)

    # -- shared -----------------------------------------------------------------------------

    def _id(self, obj: dict[str, Any], where: str, key: str) -> int:
        if key not in obj:
            raise self.error(where, key, "the field is missing")
        value = obj[key]
        if not is_int(value):
            raise self.error(where, key, f"expected an integer, got {describe(value)}")
        if not INT64_MIN <= value <= INT64_MAX:
            raise self.error(where, key, f"the id {value} does not fit in 64 bits")
        return value


def _category_facts(categories: list[CategoryRecord]) -> tuple[set[int] | None, dict[int, int]]:
    """The ids annotations may name (None: any, for a file without categories) and the number
    of keypoints of each category that lists them."""
    keypoint_counts = {
        c["coco_id"]: len(c["extra"]["keypoints"])
        for c in categories
        if c["extra"] and isinstance(c["extra"].get("keypoints"), list)
    }
    return ({c["coco_id"] for c in categories} if categories else None), keypoint_counts
