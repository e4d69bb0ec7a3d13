"""Pascal VOC, laid out as Datumaro 1.13.12 writes and reads it.

    labelmap.txt                          `background` first, then the labels in category order
    ImageSets/Main/<subset>.txt           every item id of the subset
    ImageSets/Segmentation/<subset>.txt   the items that have a mask
    Annotations/<id>.xml                  image size, one <object> (label, box) per region or box
    SegmentationClass/<id>.png            the label index of every pixel (0 = background)
    SegmentationObject/<id>.png           the object index of every pixel (0 = none)
    JPEGImages/<id><extension>            the image, with save_images

An item id is the image's file name without its extension, sub-folders kept (Datumaro's id).
Every region (mask, polygon, panoptic segment, things and stuff alike, crowd included) is
painted into both PNGs in annotation order, so where regions overlap the later one wins.

Both PNGs are palette images (mode P) whose palette is the VOC colour map, as the VOC
devkit ships them: the stored value of a pixel *is* its class or object index, which is what
VOC tools (the devkit, torchvision's VOCSegmentation, mmseg) read, and its colour is the one
Datumaro expects for that index (Datumaro decodes the PNG to colours and maps them back, so it
reads palette and RGB files alike; it writes RGB itself). labelmap.txt leaves the colours empty,
as Datumaro writes it, which means "the VOC colour map by index".

Objects: the XML lists one <object> per annotation with a region or a box, in annotation
order, and object k of the XML is index k of SegmentationObject (the VOC convention; a
box-only annotation has an object but no pixels). Datumaro writes an XML only for box
annotations and would leave out instance masks entirely; writing their boxes keeps the
detection view of the dataset. Crowd regions are written like the others with Datumaro's
`is_crowd` attribute (VOC has no crowd), which every object carries.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from repo.model.paths import output_path
from repo.errors import ConflictError, UnsupportedError
from repo.formats.exportable import BBOX, ExportAnnotation, ExportItem
from repo.formats.registry import ExportContext, ExportResult, Format, flag, register
from repo.formats.store_items import export_items, export_labels

BACKGROUND = "background"
# Index 255 is VOC's "void" (object borders, ignored pixels): labels and objects use 1..254.
MAX_INDEX = 254
LABELMAP_HEADER = "# label:color_rgb:parts:actions\n"


def voc_colormap() -> np.ndarray:
    """The VOC colour of each index 0..255: bit 3j + c of the index becomes bit 7 - j of
    channel c (c = 0 red, 1 green, 2 blue)."""
    index = np.arange(256)
    colours = np.zeros((256, 3), dtype=np.uint8)
    for j in range(8):
        for channel in range(3):
            colours[:, channel] |= (((index >> (3 * j + channel)) & 1) << (7 - j)).astype(np.uint8)
    return colours


_PALETTE = voc_colormap().tobytes()


@dataclass(frozen=True)
class VocOptions:
    save_images: bool = False


@dataclass
class VocResult:
    items: int = 0
    objects: int = 0
    regions: int = 0  # annotations painted into the PNGs
    segmented_items: int = 0
    saved_images: int = 0
    unavailable_images: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # kind -> annotations VOC cannot hold
    warnings: list[str] = field(default_factory=list)


def label_map(labels: Sequence[str]) -> list[str]:
    """The VOC label list: `background` first (the project's own, if it has one), then the
    labels in category order."""
    for name in labels:
        problem = _labelmap_problem(name)
        if problem:
            raise UnsupportedError(f"label {name!r} cannot be written to labelmap.txt: {problem}")
    names = [BACKGROUND] + [name for name in labels if name != BACKGROUND]
    if len(names) - 1 > MAX_INDEX:
        raise UnsupportedError(
            f"{len(names) - 1} labels: a VOC class PNG holds at most {MAX_INDEX} besides background "
            "(index 255 means void)"
        )
    return names


def _labelmap_problem(name: str) -> str | None:
    if not name or name != name.strip():
        return "a name must be non-empty without surrounding spaces"
    if ":" in name or "\n" in name or "\r" in name:
        return "':' and line breaks separate its fields"
    if name.startswith("#"):
        return "a line starting with '#' is a comment"
    return None


def write_voc(out_dir: Path, labels: Sequence[str], items: Iterable[ExportItem], options: VocOptions) -> VocResult:
    """Write the items as a VOC folder into `out_dir` (an existing, empty folder)."""
    names = label_map(labels)
    index = {name: position for position, name in enumerate(names)}
    result = VocResult()
    owners: dict[str, tuple[str, str]] = {}  # item id -> (subset, file name)
    with _SubsetLists(out_dir) as lists:
        for item in items:
            item_id = item.stem
            if "\n" in item_id or "\r" in item_id:
                raise UnsupportedError(f"{item.subset}/{item.file_name!r}: a VOC item id cannot hold a line break")
            owner = owners.setdefault(item_id, (item.subset, item.file_name))
            if owner != (item.subset, item.file_name):
                raise ConflictError(
                    f"'{owner[1]}' (subset {owner[0]}) and '{item.file_name}' (subset {item.subset}) both "
                    f"become VOC item '{item_id}'; VOC keeps one folder of files for all subsets"
                )
            segmented = _write_item(out_dir, item, item_id, index, options, result)
            lists.add("Main", item.subset, item_id)
            if segmented:
                lists.add("Segmentation", item.subset, item_id)
                result.segmented_items += 1
            result.items += 1
    for subset in lists.subsets:
        if "_" in subset:
            result.warnings.append(
                f"subset '{subset}': VOC readers take ImageSets/Main/<label>_<subset>.txt for class lists, "
                "so Datumaro skips a subset list whose name holds '_'"
            )
    with open(output_path(out_dir, "labelmap.txt"), "w", encoding="utf-8", newline="\n") as out:
        out.write(LABELMAP_HEADER)
        out.writelines(f"{name}:::\n" for name in names)
    return result


def _write_item(
    out_dir: Path, item: ExportItem, item_id: str, index: dict[str, int], options: VocOptions, result: VocResult
) -> bool:
    """Write the item's XML, PNGs and image; returns whether it has any region."""
    classes = objects = None
    root = _annotation_element(item, item_id)
    segmented = ET.SubElement(root, "segmented")
    number = 0
    for position, annotation in enumerate(item.annotations):
        if annotation.kind != BBOX and not annotation.has_region:
            result.skipped[annotation.kind] = result.skipped.get(annotation.kind, 0) + 1
            continue
        label = _label_index(index, annotation, item, position)
        number += 1
        _object_element(root, annotation, item)
        if annotation.has_region:
            if number > MAX_INDEX:
                raise UnsupportedError(
                    f"{item.subset}/{item.file_name}: more than {MAX_INDEX} objects; a VOC SegmentationObject "
                    "PNG holds at most that many (index 255 means void)"
                )
            if classes is None:
                classes = np.zeros((item.height, item.width), dtype=np.uint8)
                objects = np.zeros((item.height, item.width), dtype=np.uint8)
            pixels = annotation.mask(item.height, item.width)
            classes[pixels] = label
            objects[pixels] = number
            result.regions += 1
    result.objects += number
    segmented.text = "0" if classes is None else "1"
    ET.indent(root)
    xml_path = output_path(out_dir, "Annotations", item_id + ".xml")
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    xml_path.write_text(ET.tostring(root, encoding="unicode", short_empty_elements=False) + "\n", encoding="utf-8")
    if classes is not None:
        _write_png(output_path(out_dir, "SegmentationClass", item_id + ".png"), classes)
        _write_png(output_path(out_dir, "SegmentationObject", item_id + ".png"), objects)
    if options.save_images:
        if item.save_image(output_path(out_dir, "JPEGImages", item_id + item.extension)):
            result.saved_images += 1
        else:
            result.unavailable_images.append(f"{item.subset}/{item.file_name}")
    return classes is not None


def _label_index(index: dict[str, int], annotation: ExportAnnotation, item: ExportItem, position: int) -> int:
    if annotation.label not in index:
        raise ValueError(f"{item.subset}/{item.file_name}: annotation {position} has label {annotation.label!r}, "
                         "which is not in the label list")
    return index[annotation.label]


def _annotation_element(item: ExportItem, item_id: str) -> ET.Element:
    root = ET.Element("annotation")
    # Datumaro's reading of VOC ids such as 2007_000032: the folder is what precedes '_'.
    ET.SubElement(root, "folder").text = item_id[: item_id.find("_")] if "_" in item_id else ""
    ET.SubElement(root, "filename").text = item_id + item.extension
    source = ET.SubElement(root, "source")
    for tag in ("database", "annotation", "image"):
        ET.SubElement(source, tag).text = "Unknown"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(item.width)
    ET.SubElement(size, "height").text = str(item.height)
    ET.SubElement(size, "depth").text = _depth(item)
    return root


def _depth(item: ExportItem) -> str:
    """Channels of the image file, read from its header; empty when the image is unavailable
    (as Datumaro writes it)."""
    from PIL import Image, UnidentifiedImageError  # on first use: commands that do not export VOC do not load Pillow

    image = item.image
    if image is None or (isinstance(image, Path) and not image.is_file()):
        return ""
    try:
        with Image.open(io.BytesIO(image) if isinstance(image, bytes) else image) as picture:
            return str(len(picture.getbands()))
    except (UnidentifiedImageError, OSError):
        return ""


def _object_element(root: ET.Element, annotation: ExportAnnotation, item: ExportItem) -> None:
    obj = ET.SubElement(root, "object")
    ET.SubElement(obj, "name").text = annotation.label
    for tag in ("truncated", "occluded", "difficult"):
        ET.SubElement(obj, tag).text = "0"
    box = annotation.box(item.height, item.width)
    if box is not None:
        x, y, w, h = box
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, value in (("xmin", x), ("ymin", y), ("xmax", x + w), ("ymax", y + h)):
            ET.SubElement(bndbox, tag).text = _number(value)
    attributes = ET.SubElement(obj, "attributes")
    attribute = ET.SubElement(attributes, "attribute")
    ET.SubElement(attribute, "name").text = "is_crowd"
    ET.SubElement(attribute, "value").text = str(bool(annotation.iscrowd))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _write_png(path: Path, indices: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.frombytes("P", (indices.shape[1], indices.shape[0]), indices.tobytes())
    picture.putpalette(_PALETTE)
    picture.save(path, format="PNG")


class _SubsetLists:
    """ImageSets/<task>/<subset>.txt, appended to as items stream by."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.files: dict[tuple[str, str], IO[str]] = {}
        self.subsets: list[str] = []

    def add(self, task: str, subset: str, item_id: str) -> None:
        out = self.files.get((task, subset))
        if out is None:
            path = output_path(self.out_dir, "ImageSets", task, subset + ".txt")
            path.parent.mkdir(parents=True, exist_ok=True)
            out = self.files[(task, subset)] = open(path, "w", encoding="utf-8", newline="\n")
            if subset not in self.subsets:
                self.subsets.append(subset)
        out.write(item_id + "\n")

    def __enter__(self) -> "_SubsetLists":
        return self

    def __exit__(self, *exc: object) -> None:
        for out in self.files.values():
            out.close()


def write(context: ExportContext) -> ExportResult:
    """The registry's writer: the snapshot's images (see `repo.formats.store_items`)."""
    labels = export_labels(context.connection, context.snapshot)
    items = export_items(context, with_images=True)
    result = write_voc(context.out_dir, labels, items, VocOptions(save_images=context.options["save_images"]))
    files = [context.output_path("labelmap.txt"), *sorted(context.out_dir.glob("ImageSets/*/*.txt"))]
    notes = [*result.warnings]
    if result.skipped:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(result.skipped.items()))
        notes.append(f"left out annotations VOC cannot hold (no region or box): {kinds}")
    return ExportResult(
        files=files, images=result.items, annotations=result.objects, pngs=2 * result.segmented_items,
        saved_images=result.saved_images, unavailable_images=result.unavailable_images, notes=notes,
    )


register(Format(
    "voc",
    "Pascal VOC as Datumaro reads it: labelmap.txt, Annotations/*.xml, SegmentationClass/ and "
    "SegmentationObject/ palette PNGs, ImageSets lists, JPEGImages/ with --save-images.",
    writer=write,
    export_options=(
        flag("save_images", "--save-images", "--save-media", help="Also write the images, to JPEGImages/."),
    ),
))
