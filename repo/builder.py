"""Building a dataset from code: items and annotations given in Python, written as a new source.

    builder = DatasetBuilder(project, "custom", categories=["a", "b", "c", "d"])
    item = builder.add_item("val", "000000000001.jpg", coco_id=40, image=np.ones((1, 5, 3), np.uint8))
    builder.add_annotation(item, mask=np.array([[0, 0, 1, 1, 0]]), label="d", id=7)
    builder.add_annotation(item, mask=np.array([[0, 1, 0, 0, 1]]), label=1, id=20, iscrowd=True)
    builder.build()

The builder writes what it was given as the COCO documents an import would read (one per task
and subset, every file listing all images of its subset) and the id map a panoptic PNG would
hold, then hands them to the import's own path: the same validation (so a bad box or mask gives
the error an import gives), the same writer, one transaction. Nothing is written before
`build()`.

What an annotation becomes follows Datumaro's datasets (the format page's Example 2):
- a `caption` goes to `captions`; `keypoints` to `person_keypoints` (its category must declare
  the point names, e.g. `{"name": "person", "keypoints": [...], "skeleton": [...]}`);
- a `mask` goes to `panoptic` (or `instances` with `mask_task="instances"`); masks of one item
  with the same `group` (default: their `id`) are one segment or instance, their union;
- `polygons` or a `bbox` go to `instances`; a `label` alone to `labels`.
Labels are names from `categories` or indices into it; category ids are index + 1, as Datumaro
writes them. Ids left out are numbered after the largest given one.

An item's `image` (a numpy array) is encoded by its file name's extension and stored in the
database, or, with `image_dir`, written to `image_dir/<subset>/<file_name>` and not stored.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from repo.coco.panoptic import attach_segment_masks, segment_masks
from repo.coco.reader import PANOPTIC_ID_LIMIT, read_task_document
from repo.coco.tasks import LABELLED_TASKS, TASKS, file_name_for
from repo.errors import ConflictError, InputError, OptionError
from repo.formats.registry import PreviousImport, ReadFile, UnchangedFile
from repo.importing import ImportResult, import_from_reader
from repo.model.paths import output_path, unsafe_path_problem
from repo.model.policy import ErrorPolicy
from repo.progress import Progress
from repo.project import Project

MASK_TASKS = ("panoptic", "instances")
FORMAT = "coco"  # what the source holds: COCO task files, as an import of `coco` stores them


@dataclass
class BuiltItem:
    """An item added to a builder; pass it to `DatasetBuilder.add_annotation`."""

    subset: str
    file_name: str
    width: int
    height: int
    coco_id: int | None
    attributes: dict[str, Any]
    image: np.ndarray | None = field(default=None, repr=False)
    annotations: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def shown(self) -> str:
        return f"{self.subset}/{self.file_name}"


class DatasetBuilder:
    """Collects items and annotations in memory; `build()` writes them as the source `name`."""

    def __init__(
        self,
        project: Project,
        name: str,
        categories: Sequence[str | Mapping[str, Any]] = (),
        *,
        mask_task: str = "panoptic",
        image_dir: str | os.PathLike[str] | None = None,
    ):
        if mask_task not in MASK_TASKS:
            raise OptionError(f"mask_task must be one of {', '.join(MASK_TASKS)}, got {mask_task!r}")
        self.project = project
        self.name = name
        self.mask_task = mask_task
        self.image_dir = Path(image_dir) if image_dir is not None else None
        self.categories = [_category(entry, index) for index, entry in enumerate(categories)]
        self._label_ids = {category["name"]: category["id"] for category in self.categories}
        self.items: list[BuiltItem] = []
        self._keys: set[tuple[str, str]] = set()

    @property
    def shown(self) -> str:
        return f"<built {self.name}>"

    def add_item(
        self,
        subset: str,
        file_name: str,
        *,
        width: int | None = None,
        height: int | None = None,
        coco_id: int | None = None,
        image: np.ndarray | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> BuiltItem:
        """An image of `subset`. Its size comes from `image` (HxW or HxWxC pixels) when given;
        `attributes` become fields of COCO's image object (e.g. `license`, `date_captured`)."""
        record = f"item {subset}/{file_name}"
        problem = unsafe_path_problem(file_name) if isinstance(file_name, str) else "expected a string"
        if problem:
            raise InputError(self.shown, record, "file_name", problem)
        if (subset, file_name) in self._keys:
            raise ConflictError(f"{self.shown}: {record} was added twice")
        pixels = None
        if image is not None:
            pixels = np.asarray(image)
            if pixels.ndim not in (2, 3) or pixels.shape[0] == 0 or pixels.shape[1] == 0:
                raise InputError(self.shown, record, "image", f"expected HxW or HxWxC pixels, got shape {pixels.shape}")
            for given, actual, what in ((width, pixels.shape[1], "width"), (height, pixels.shape[0], "height")):
                if given is not None and given != actual:
                    raise InputError(self.shown, record, what, f"{given} differs from the image's {actual} pixels")
            height, width = pixels.shape[:2]
        if width is None or height is None:
            raise InputError(self.shown, record, "width" if width is None else "height", "give the size or the image")
        reserved = {"id", "file_name", "width", "height"} & set(attributes or {})
        if reserved:
            raise InputError(self.shown, record, "attributes", f"'{sorted(reserved)[0]}' is a field of the item itself")
        item = BuiltItem(subset, file_name, width, height, coco_id, dict(attributes or {}), pixels)
        self._keys.add((subset, file_name))
        self.items.append(item)
        return item

    def add_annotation(
        self,
        item: BuiltItem,
        *,
        label: str | int | None = None,
        mask: np.ndarray | None = None,
        polygons: Sequence[Sequence[float]] | None = None,
        bbox: Sequence[float] | None = None,
        keypoints: Sequence[float] | np.ndarray | None = None,
        caption: str | None = None,
        id: int | None = None,
        group: int | None = None,
        iscrowd: bool = False,
        score: float | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """An annotation of `item`; what it holds decides its task (see the module docstring).
        `keypoints` are x, y, visibility per point (flat, or one row per point)."""
        task = self._task(item, mask, polygons, bbox, keypoints, caption, label)
        obj: dict[str, Any] = {"id": id}
        if task != "captions":
            obj["category_id"] = self._category_id(item, label)
        if caption is not None:
            obj["caption"] = caption
        if bbox is not None:
            obj["bbox"] = [_plain(value) for value in bbox]
        if polygons is not None:
            obj["segmentation"] = [[_plain(value) for value in part] for part in polygons]
        if keypoints is not None:
            flat = [_plain(value) for value in np.asarray(keypoints).ravel()]
            obj["keypoints"] = flat
            obj["num_keypoints"] = sum(1 for visibility in flat[2::3] if visibility > 0)
        if task in ("instances", "person_keypoints", "panoptic"):
            obj["iscrowd"] = int(bool(iscrowd))
        if score is not None:
            obj["score"] = score
        if attributes:
            obj["attributes"] = dict(attributes)
        if mask is not None:
            obj["mask"] = self._mask(item, mask, id)
            obj["group"] = group if group is not None else id
        item.annotations.append({"task": task, **obj})

    def _task(
        self, item: BuiltItem, mask: Any, polygons: Any, bbox: Any, keypoints: Any, caption: Any, label: Any
    ) -> str:
        if caption is not None:
            if any(value is not None for value in (mask, polygons, bbox, keypoints, label)):
                raise InputError(self.shown, f"item {item.shown}", "caption", "a caption takes no label or geometry")
            return "captions"
        if label is None:
            raise InputError(self.shown, f"item {item.shown}", "label", "the annotation needs a label")
        if keypoints is not None:
            if mask is not None:
                raise InputError(
                    self.shown, f"item {item.shown}", "mask", "keypoints take polygons or a box, not a mask"
                )
            return "person_keypoints"
        if mask is not None:
            if polygons is not None:
                raise InputError(self.shown, f"item {item.shown}", "mask", "give a mask or polygons, not both")
            return self.mask_task
        return "instances" if polygons is not None or bbox is not None else "labels"

    def _category_id(self, item: BuiltItem, label: str | int | None) -> int:
        where = f"item {item.shown}"
        if isinstance(label, str):
            if label not in self._label_ids:
                known = ", ".join(self._label_ids) or "none"
                raise InputError(self.shown, where, "label", f"no category is named {label!r} (categories: {known})")
            return self._label_ids[label]
        if type(label) is int or isinstance(label, np.integer):
            if not 0 <= label < len(self.categories):
                raise InputError(
                    self.shown,
                    where,
                    "label",
                    f"index {label} is not in the category list (0..{len(self.categories) - 1})",
                )
            return self.categories[int(label)]["id"]
        raise InputError(self.shown, where, "label", f"expected a category name or index, got {label!r}")

    def _mask(self, item: BuiltItem, mask: Any, id: int | None) -> np.ndarray:
        where = f"item {item.shown}, mask {id if id is not None else len(item.annotations)}"
        pixels = np.asarray(mask)
        if pixels.shape != (item.height, item.width):
            raise InputError(
                self.shown,
                where,
                "mask",
                f"the mask is {_size(pixels.shape)} (height x width), but the image is {item.height}x{item.width}",
            )
        if pixels.dtype != bool and not np.isin(pixels, (0, 1)).all():
            raise InputError(self.shown, where, "mask", "expected 0 and 1 (or booleans) only")
        return pixels.astype(bool)

    # -- writing ---------------------------------------------------------------------------

    def build(self, *, progress: Progress | None = None) -> ImportResult:
        """Write everything added as the new source, in one transaction (as an import)."""
        if self.image_dir is not None:
            return self._build(self.image_dir, str(self.image_dir.resolve()), progress)
        with tempfile.TemporaryDirectory(prefix="dsrepo-build-") as scratch:
            return self._build(Path(scratch), None, progress)

    def _build(self, root: Path, origin: str | None, progress: Progress | None) -> ImportResult:
        for item in self.items:
            if item.image is not None:
                target = output_path(root, item.subset, item.file_name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_encoded(item, self.shown))
        reader = _BuiltReader(self, root, store_images=origin is None)
        return import_from_reader(self.project, FORMAT, reader, origin, name=self.name, progress=progress)

    def documents(self) -> Iterator[tuple[str, str, dict[str, Any], dict[int, np.ndarray]]]:
        """(task, subset, COCO document, panoptic id map per image id) for every file to write."""
        subsets: dict[str, list[BuiltItem]] = {}
        for item in self.items:
            subsets.setdefault(item.subset, []).append(item)
        used = {annotation["task"] for item in self.items for annotation in item.annotations} or {"image_info"}
        for task in (task for task in TASKS if task in used):
            for subset, items in subsets.items():
                yield (task, subset, *self._document(task, items))

    def _document(self, task: str, items: list[BuiltItem]) -> tuple[dict[str, Any], dict[int, np.ndarray]]:
        image_ids = _numbered([item.coco_id for item in items])
        images = [
            {"id": image_id, "width": item.width, "height": item.height, "file_name": item.file_name, **item.attributes}
            for item, image_id in zip(items, image_ids)
        ]
        document: dict[str, Any] = {"licenses": [], "info": {}, "categories": [], "images": images, "annotations": []}
        if task in LABELLED_TASKS:
            document["categories"] = [dict(category) for category in self.categories]
        id_maps: dict[int, np.ndarray] = {}
        if task == "panoptic":
            for item, image_id in zip(items, image_ids):
                record, id_maps[image_id] = self._panoptic_record(item, image_id)
                document["annotations"].append(record)
            return document, id_maps
        own = [
            (item, image_id, a)
            for item, image_id in zip(items, image_ids)
            for a in item.annotations
            if a["task"] == task
        ]
        ids = iter(_numbered([a["id"] for _, _, a in own]))
        for item, image_id, annotation in own:
            obj = {key: value for key, value in annotation.items() if key not in ("task", "mask", "group")}
            obj["id"], obj["image_id"] = next(ids), image_id
            if "mask" in annotation:
                obj.update(_rle_fields(annotation["mask"]))
            document["annotations"].append(obj)
        document["annotations"] = _grouped(document["annotations"], own)
        return document, id_maps

    def _panoptic_record(self, item: BuiltItem, image_id: int) -> tuple[dict[str, Any], np.ndarray]:
        """The record of one image and its id map: masks of one group are one segment."""
        masks = [a for a in item.annotations if a["task"] == "panoptic"]
        id_map = np.zeros((item.height, item.width), dtype=np.uint32)
        segments: dict[int, dict[str, Any]] = {}
        for annotation, segment_id in zip(masks, _numbered([a["group"] for a in masks])):
            if type(segment_id) is not int or not 0 < segment_id < PANOPTIC_ID_LIMIT:
                raise InputError(
                    self.shown,
                    f"segment id {segment_id} of image id {image_id}",
                    "id",
                    "expected 1 to 2^24-1 (a PNG pixel holds 24 bits; 0 marks void pixels)",
                )
            pixels = annotation["mask"]
            taken = id_map[pixels & (id_map != 0) & (id_map != segment_id)]
            if taken.size:
                raise InputError(
                    self.shown,
                    f"segment id {segment_id} of image id {image_id}",
                    "mask",
                    f"the mask overlaps segment {int(taken[0])}; panoptic segments must not overlap",
                )
            id_map[pixels] = segment_id
            fields = {key: value for key, value in annotation.items() if key not in ("task", "mask", "group", "id")}
            if segments.setdefault(segment_id, fields)["category_id"] != fields["category_id"]:
                raise InputError(
                    self.shown, f"segment id {segment_id} of image id {image_id}", "label",
                    "the masks of one group must have one label",
                )
        infos = []
        for segment_id, fields in segments.items():
            encoded = coco_mask.encode(np.asfortranarray((id_map == segment_id).astype(np.uint8)))
            infos.append(
                {
                    "id": segment_id,
                    "category_id": fields.pop("category_id"),
                    "iscrowd": fields.pop("iscrowd"),
                    "bbox": [int(v) for v in coco_mask.toBbox(encoded)],
                    "area": int(coco_mask.area(encoded)),
                    **fields,
                }
            )
        png_name = os.path.splitext(item.file_name)[0] + ".png"
        return {"image_id": image_id, "file_name": png_name, "segments_info": infos}, id_map


class _BuiltReader:
    """The builder's documents, read as an import reads files (see `repo.formats.registry`)."""

    def __init__(self, builder: DatasetBuilder, root: Path, store_images: bool):
        self.builder = builder
        self.root = root
        self.store_images = store_images

    def read(
        self, policy: ErrorPolicy, progress: Progress, previous: PreviousImport | None = None
    ) -> Iterator[ReadFile | UnchangedFile]:
        """Every document, read: a dataset built from code has no earlier bytes to compare."""
        for task, subset, document, id_maps in self.builder.documents():
            name = file_name_for(task, subset)
            shown = f"{self.builder.shown}/{name}"
            progress.start(f"reading {name}", 1)
            task_file = read_task_document(document, shown, task, subset, name, policy)
            for record in task_file.panoptic:
                png = f"{shown.removesuffix('.json')}/{record.png_name}"
                segment_ids = [segment["coco_id"] for segment in record.segments]
                attach_segment_masks(record, segment_masks(id_maps[record.image_id], record.image_id, segment_ids, png))
            progress.advance()
            yield ReadFile(task_file, shown, [self.root / subset])


def _category(entry: str | Mapping[str, Any], index: int) -> dict[str, Any]:
    """A COCO category: id index + 1, then the fields given (a name, or a category object)."""
    if isinstance(entry, str):
        return {"id": index + 1, "name": entry, "supercategory": ""}
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
        raise OptionError(f"category {index}: expected a name or an object with a 'name', got {entry!r}")
    return {"id": index + 1, "supercategory": "", **{key: value for key, value in entry.items() if key != "id"}}


def _numbered(given: Sequence[int | None]) -> list[int]:
    """The ids given, and the missing ones numbered after the largest given (from 1)."""
    next_id = max((value for value in given if value is not None), default=0) + 1
    numbered = []
    for value in given:
        if value is None:
            value, next_id = next_id, next_id + 1
        numbered.append(value)
    return numbered


def _grouped(objects: list[dict[str, Any]], own: list[tuple[BuiltItem, int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Masks of one item and group become one annotation holding their union."""
    kept: list[dict[str, Any]] = []
    first: dict[tuple[int, int], tuple[dict[str, Any], np.ndarray]] = {}
    for obj, (item, _, annotation) in zip(objects, own):
        group = annotation.get("group")
        if "mask" not in annotation or group is None:
            kept.append(obj)
            continue
        key = (id(item), group)
        if key not in first:
            first[key] = (obj, annotation["mask"])
            kept.append(obj)
            continue
        target, pixels = first[key]
        union = pixels | annotation["mask"]
        first[key] = (target, union)
        target.update(_rle_fields(union))
    return kept


def _rle_fields(pixels: np.ndarray) -> dict[str, Any]:
    encoded = coco_mask.encode(np.asfortranarray(pixels.astype(np.uint8)))
    return {
        "segmentation": {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")},
        "area": int(coco_mask.area(encoded)),
        "bbox": [int(v) for v in coco_mask.toBbox(encoded)],
    }


def _encoded(item: BuiltItem, shown: str) -> bytes:
    """The item's pixels as a file of its extension's format (values as they are, clipped to 0..255)."""
    pixels = item.image
    assert pixels is not None
    if pixels.dtype != np.uint8:
        pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    out = io.BytesIO()
    try:
        extension = Image.registered_extensions().get(os.path.splitext(item.file_name)[1].lower())
        if extension is None:
            raise ValueError("no image format has this file extension")
        Image.fromarray(pixels).save(out, format=extension)
    except (ValueError, OSError, TypeError, KeyError) as exc:
        raise InputError(
            shown, f"item {item.shown}", "image", f"cannot be written as {item.file_name} ({exc})"
        ) from None
    return out.getvalue()


def _plain(value: Any) -> Any:
    """A numpy number as the Python int or float COCO's reader takes."""
    return value.item() if isinstance(value, np.generic) else value


def _size(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape)
