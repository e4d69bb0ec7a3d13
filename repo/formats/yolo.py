"""YOLO in the Ultralytics layout.

    data.yaml                         path, one key per subset (train / val / test), names
    images/<subset>/<file_name>       the images, with save_images
    labels/<subset>/<stem>.txt        one line per object: class index, then coordinates
                                      normalised by the image's width and height

A line is `class cx cy w h` (the box centre and size), or with `segments` `class x1 y1 x2 y2
...` (a polygon). Every image gets a label file, empty when it has no object: Ultralytics
then knows it as a background image, not a missing one. The class index is the label's
position in the project's label list, which `names` spells out.

What a line cannot hold is skipped and counted in the result, never guessed:
- crowd annotations (COCO's "ignore this region"; YOLO has no such notion, and training on
  them would teach the crowd as one object);
- annotations without a region or box (keypoints, captions, image labels);
- with `segments`, a box-only annotation becomes its rectangle, which is all that is known of
  it (Ultralytics drops every polygon of a dataset whose files mix box lines and polygon
  lines); masks (RLE, panoptic segments) are traced into polygons along their pixel edges
  (`repo.transforms.masks.trace`), one part per region.
Coordinates are clipped to the image, since Ultralytics discards a whole label file holding a
coordinate outside 0..1; a box or polygon with no width or height left at six decimals is
skipped. A polygon with several
parts becomes one outline: each further part is joined to the outline at its nearest point
and the path walks around the part and back, so one object stays one line (as Ultralytics'
own COCO converter does; where two parts overlap, rasterisers fill the overlap as a hole).

Ultralytics finds an image's labels by replacing the last `/images/` of its path with
`/labels/`, and resolves a relative `path` against its own datasets folder, not against the
YAML file: `path` is therefore the output folder's absolute path, and file names with a
folder named `images` are refused.

Subsets map to Ultralytics' keys by name: `train...` to `train`, `val...` to `val`, `test...`
to `test` (train2017 -> train); any other subset keeps its own name as key. Several subsets
of one key become a list.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from repo.model.paths import output_path
from repo.errors import UnsupportedError
from repo.formats.exportable import BBOX, MASK, ExportAnnotation, ExportItem
from repo.formats.registry import ExportContext, ExportResult, Format, flag, register
from repo.formats.store_items import export_items, export_labels
from repo.transforms.masks import trace

ROLES = ("train", "val", "test")
# Keys of an Ultralytics dataset YAML that are not subsets.
DECIMALS = 6  # of a normalised coordinate: a thousandth of a pixel at 1000 pixels
RESERVED_KEYS = {"path", "names", "nc", "download", "yaml_file", "kpt_shape", "flip_idx", "channels", "minival"}


@dataclass(frozen=True)
class YoloOptions:
    save_images: bool = False
    segments: bool = False


@dataclass
class YoloResult:
    images: int = 0
    objects: int = 0  # lines written
    crowd_skipped: int = 0
    masks_traced: int = 0  # with segments: masks written as the polygons traced around them
    clipped: int = 0  # objects that reached outside the image and were clipped to it
    empty_skipped: int = 0  # boxes or polygons with no area left inside the image
    skipped: dict[str, int] = field(default_factory=dict)  # kind -> annotations without region or box
    saved_images: int = 0
    unavailable_images: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def subset_key(subset: str) -> str:
    """The data.yaml key of a subset (see the module docstring)."""
    lowered = subset.lower()
    for role in ROLES:
        if lowered.startswith(role):
            return role
    if subset in RESERVED_KEYS:
        raise UnsupportedError(f"subset '{subset}': its name is a key Ultralytics reserves in data.yaml")
    return subset


def write_yolo(out_dir: Path, labels: Sequence[str], items: Iterable[ExportItem], options: YoloOptions) -> YoloResult:
    """Write the items as an Ultralytics YOLO dataset into `out_dir` (an existing, empty folder)."""
    index = {name: position for position, name in enumerate(labels)}
    result = YoloResult()
    subsets: list[str] = []
    for item in items:
        if item.subset not in subsets:
            subset_key(item.subset)
            subsets.append(item.subset)
            output_path(out_dir, "images", item.subset).mkdir(parents=True, exist_ok=True)
        if "images" in PurePosixPath(item.file_name).parts[:-1]:
            raise UnsupportedError(
                f"{item.subset}/{item.file_name}: a folder named 'images' in a file name makes Ultralytics "
                "look for its labels in the wrong place"
            )
        lines = [line for position, annotation in enumerate(item.annotations)
                 if (line := _line(annotation, item, position, index, options.segments, result)) is not None]
        label_path = output_path(out_dir, "labels", item.subset, item.stem + ".txt")
        label_path.parent.mkdir(parents=True, exist_ok=True)
        label_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        result.objects += len(lines)
        result.images += 1
        if options.save_images:
            if item.save_image(output_path(out_dir, "images", item.subset, item.file_name)):
                result.saved_images += 1
            else:
                result.unavailable_images.append(f"{item.subset}/{item.file_name}")
    _write_data_yaml(out_dir, labels, subsets, result)
    return result


def _line(
    annotation: ExportAnnotation, item: ExportItem, position: int, index: dict[str, int], segments: bool,
    result: YoloResult,
) -> str | None:
    if annotation.kind != BBOX and not annotation.has_region:
        result.skipped[annotation.kind] = result.skipped.get(annotation.kind, 0) + 1
        return None
    if annotation.iscrowd:
        result.crowd_skipped += 1
        return None
    if annotation.label not in index:
        raise ValueError(f"{item.subset}/{item.file_name}: annotation {position} has label {annotation.label!r}, "
                         "which is not in the label list")
    if segments:
        points = _outline(annotation, item)
        if annotation.polygons is None and annotation.kind == MASK:
            if points is None:
                result.empty_skipped += 1
                return None
            result.masks_traced += 1
    else:
        points = _box_corners(annotation, item)
    if points is None:
        result.skipped[annotation.kind] = result.skipped.get(annotation.kind, 0) + 1
        return None
    scale = np.array([item.width, item.height], dtype=np.float64)
    normalised = points / scale
    clipped = np.clip(normalised, 0.0, 1.0)
    if not np.array_equal(clipped, normalised):
        result.clipped += 1
    extent = np.round(clipped.max(axis=0) - clipped.min(axis=0), DECIMALS)
    if extent[0] <= 0 or extent[1] <= 0:
        result.empty_skipped += 1
        return None
    if segments:
        values = clipped.ravel()
    else:
        (x1, y1), (x2, y2) = clipped
        values = np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
    return " ".join([str(index[annotation.label])] + [f"{value:.{DECIMALS}f}" for value in values])


def _box_corners(annotation: ExportAnnotation, item: ExportItem) -> np.ndarray | None:
    box = annotation.box(item.height, item.width)
    if box is None:
        return None
    x, y, w, h = (float(value) for value in box)
    return np.array([[x, y], [x + w, y + h]], dtype=np.float64)


def _outline(annotation: ExportAnnotation, item: ExportItem) -> np.ndarray | None:
    """The polygon (in pixels) of a polygon annotation, the traced outline of a mask, or the
    rectangle of a box-only one."""
    if annotation.polygons is None and annotation.has_region:
        traced = trace(annotation.mask(item.height, item.width))
        if not traced:
            return None
        return join_parts([np.asarray(part, dtype=np.float64).reshape(-1, 2) for part in traced])
    if annotation.polygons is None:
        corners = _box_corners(annotation, item)
        if corners is None:
            return None
        (x1, y1), (x2, y2) = corners
        return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)
    parts = [np.asarray(part, dtype=np.float64).reshape(-1, 2) for part in annotation.polygons]
    return join_parts(parts)


def join_parts(parts: Sequence[np.ndarray]) -> np.ndarray:
    """One outline through every part: each further part is entered from the outline's point
    nearest to it, walked around in full and left back to that point."""
    outline = parts[0]
    for part in parts[1:]:
        distances = ((outline[:, None, :] - part[None, :, :]) ** 2).sum(axis=2)
        at, entry = np.unravel_index(int(distances.argmin()), distances.shape)
        loop = np.concatenate((np.roll(part, -entry, axis=0), part[entry:entry + 1]))
        outline = np.concatenate((outline[:at + 1], loop, outline[at:]))
    return outline


def _write_data_yaml(out_dir: Path, labels: Sequence[str], subsets: list[str], result: YoloResult) -> None:
    """data.yaml in the plain subset of YAML that JSON strings are (every string quoted)."""
    keys: dict[str, list[str]] = {}
    for subset in subsets:
        keys.setdefault(subset_key(subset), []).append(f"images/{subset}")
    missing = [role for role in ("train", "val") if role not in keys]
    if missing:
        result.warnings.append(
            f"data.yaml has no {' or '.join(repr(role) for role in missing)} key (no subset named so): "
            "Ultralytics needs both to train; add them by hand"
        )
    lines = ["# Ultralytics YOLO dataset written by dsrepo", f"path: {_quoted(str(out_dir.resolve()))}"]
    for key, folders in keys.items():
        if len(folders) == 1:
            lines.append(f"{_quoted(key)}: {_quoted(folders[0])}")
        else:
            lines.append(f"{_quoted(key)}:")
            lines.extend(f"  - {_quoted(folder)}" for folder in folders)
    lines.append("names:")
    lines.extend(f"  {position}: {_quoted(name)}" for position, name in enumerate(labels))
    output_path(out_dir, "data.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is one)."""
    return json.dumps(text, ensure_ascii=False)


def write(context: ExportContext) -> ExportResult:
    """The registry's writer: the snapshot's images (see `repo.formats.store_items`)."""
    options = YoloOptions(save_images=context.options["save_images"], segments=context.options["segments"])
    labels = export_labels(context.connection, context.snapshot)
    result = write_yolo(context.out_dir, labels, export_items(context, with_images=options.save_images), options)
    notes = [*result.warnings]
    for count, what in (
        (result.crowd_skipped, "crowd annotations skipped (YOLO has no crowd regions)"),
        (result.masks_traced, "masks written as the polygons traced along their pixel edges"),
        (result.empty_skipped, "boxes or polygons skipped: no area inside the image"),
        (result.clipped, "objects clipped to the image"),
    ):
        if count:
            notes.append(f"{count} {what}")
    if result.skipped:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(result.skipped.items()))
        notes.append(f"left out annotations YOLO cannot hold (no region or box): {kinds}")
    return ExportResult(
        files=[context.output_path("data.yaml")], images=result.images, annotations=result.objects,
        saved_images=result.saved_images, unavailable_images=result.unavailable_images, notes=notes,
    )


register(Format(
    "yolo",
    "Ultralytics YOLO: data.yaml, images/<subset>/, labels/<subset>/*.txt with normalised boxes "
    "(polygons with --segments); crowd annotations are skipped and counted.",
    writer=write,
    export_options=(
        flag("save_images", "--save-images", "--save-media", help="Also write the images, to images/<subset>/."),
        flag("segments", "--segments", help="Write polygons instead of boxes (masks are traced into polygons)."),
    ),
))
