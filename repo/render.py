"""Drawing an image's annotations over it: `dsrepo render` and the web app's pictures.

What is drawn, bottom to top:
- masks (polygons, RLE, panoptic segments) filled semi-transparent and outlined; crowd
  regions are hatched (every other diagonal stripe) instead of filled, and their boxes dashed;
- boxes, then keypoints: skeleton edges between points both labelled, visible points (v=2) as
  filled discs, occluded ones (v=1) as white discs ringed in colour; v=0 points are not drawn;
- label names at the top-left corner of each box;
- captions and image-level labels as text in a band under the image (the canvas grows down).

A label's colour comes from a hash of its name, so it is the same in every picture whatever
the order of rows; a panoptic segment whose category has a `color` uses that colour. An
image that is neither stored nor on disk is drawn on a neutral canvas of the item's size, and
the picture comes with a note that says so. Pillow and numpy only.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from repo.dataset import Annotation, Item, find_items, not_found
from repo.errors import ConflictError, InputError, NotFoundError, OptionError, OutputError
from repo.project import Project

RENDERER_VERSION = 1  # part of the web cache's keys: drawing differently draws anew
NEUTRAL = (128, 128, 128)
BAND = (250, 250, 250)
FILL_ALPHA = 0.45
HATCH_ALPHA = 0.7
HATCH_PERIOD = 6  # pixels between the starts of two hatch stripes (half of them painted)
TEXT_SIZE = 13
MIN_BAND_WIDTH = 320
REGION_TASKS = ("panoptic", "stuff")  # drawn under the objects


def label_colour(label: str | None) -> tuple[int, int, int]:
    """A bright colour for a label, from a hash of its name (never from row order)."""
    digest = hashlib.sha256((label or "").encode("utf-8")).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536
    saturation = 0.55 + digest[2] / 255 * 0.4
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, 0.95)
    return round(red * 255), round(green * 255), round(blue * 255)


def annotation_colour(annotation: Annotation) -> tuple[int, int, int]:
    if annotation.task == "panoptic" and annotation.color is not None:
        return annotation.color
    return label_colour(annotation.label)


@dataclass
class Picture:
    image: Image.Image
    notes: list[str] = field(default_factory=list)
    drawn: int = 0  # annotations drawn


def base_image(items: Sequence[Item]) -> tuple[np.ndarray, list[str]]:
    """The image the items share, or a neutral canvas of their size, with notes on why."""
    item = items[0]
    shown = f"{item.subset}/{item.file_name}"
    for candidate in items:
        try:
            pixels = candidate.image()
        except InputError as exc:
            return _canvas(item), [f"{exc}; drawn on a blank canvas"]
        if pixels is None:
            continue
        if pixels.shape[:2] != (item.height, item.width):
            return _canvas(item), [
                f"image {shown} is {pixels.shape[1]}x{pixels.shape[0]} pixels but the item says "
                f"{item.width}x{item.height}; drawn on a blank canvas"
            ]
        return pixels, []
    where = f" nor at {item.image_file}" if item.image_file else " nor was it found at import"
    return _canvas(item), [f"image {shown} is not stored in the database{where}; drawn on a blank canvas"]


def _canvas(item: Item) -> np.ndarray:
    return np.full((item.height, item.width, 3), NEUTRAL, dtype=np.uint8)


def draw(items: Sequence[Item], *, scale: int = 1) -> Picture:
    """The overlay of the annotations of `items` (one image: the same subset and file name,
    from one or more sources) over that image, enlarged `scale` times."""
    if not items:
        raise ValueError("draw needs at least one item")
    sizes = {(item.width, item.height) for item in items}
    if len(sizes) > 1:
        raise ConflictError(f"image '{items[0].file_name}' has different sizes in different sources: {sorted(sizes)}")
    pixels, notes = base_image(items)
    annotations = [a for item in items for a in item.annotations]
    if scale > 1:
        pixels = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
    canvas = pixels.astype(np.float32)
    ordered = sorted(annotations, key=_layer)
    for annotation in ordered:
        if annotation.has_mask:
            _paint_mask(canvas, annotation, scale)
    image = Image.fromarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8), "RGB")
    pen = ImageDraw.Draw(image)
    font = _font()
    width = max(1, round(min(image.size) / 300))
    for annotation in ordered:
        if annotation.bbox is not None and annotation.task != "panoptic":
            _box(pen, annotation, scale, width)
        if annotation.keypoints:
            _keypoints(pen, annotation, scale, width)
    for annotation in ordered:
        if annotation.bbox is not None and annotation.label is not None:
            _label_tag(pen, font, annotation, scale)
    lines = _text_lines(annotations)
    if lines:
        image = _with_band(image, lines, font)
    drawn = sum(1 for a in annotations if a.has_mask or a.bbox is not None or a.keypoints or a.caption or a.kind == "label")
    return Picture(image, notes, drawn)


def _layer(annotation: Annotation) -> int:
    """Regions first (panoptic, stuff), then crowd regions, then the objects over them."""
    if annotation.task in REGION_TASKS:
        return 0
    return 1 if annotation.iscrowd else 2


def _paint_mask(canvas: np.ndarray, annotation: Annotation, scale: int) -> None:
    mask = annotation.mask()
    if mask is None or mask.shape != (annotation.image_size[0], annotation.image_size[1]):
        return
    if scale > 1:
        mask = np.repeat(np.repeat(mask, scale, axis=0), scale, axis=1)
    colour = np.asarray(annotation_colour(annotation), dtype=np.float32)
    if annotation.iscrowd:
        rows, columns = np.indices(mask.shape)
        fill = mask & (((rows + columns) % HATCH_PERIOD) < HATCH_PERIOD // 2)
        alpha = HATCH_ALPHA
    else:
        fill, alpha = mask, FILL_ALPHA
    canvas[fill] = canvas[fill] * (1 - alpha) + colour * alpha
    canvas[_outline(mask)] = colour


def _outline(mask: np.ndarray) -> np.ndarray:
    """The mask's pixels that touch a pixel outside it (4-neighbourhood; the border counts)."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def _box(pen: ImageDraw.ImageDraw, annotation: Annotation, scale: int, width: int) -> None:
    x, y, w, h = (float(v) * scale for v in annotation.bbox or ())
    colour = annotation_colour(annotation)
    corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)]
    if annotation.iscrowd:
        for start, end in zip(corners, corners[1:]):
            _dashed(pen, start, end, colour, width)
    else:
        pen.line(corners, fill=colour, width=width)


def _dashed(pen: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float],
            colour: tuple[int, int, int], width: int, dash: float = 6.0) -> None:
    length = float(np.hypot(end[0] - start[0], end[1] - start[1]))
    steps = max(1, int(length // dash))
    for step in range(0, steps, 2):
        a, b = step / steps, min(step + 1, steps) / steps
        pen.line([(start[0] + (end[0] - start[0]) * a, start[1] + (end[1] - start[1]) * a),
                  (start[0] + (end[0] - start[0]) * b, start[1] + (end[1] - start[1]) * b)], fill=colour, width=width)


def _keypoints(pen: ImageDraw.ImageDraw, annotation: Annotation, scale: int, width: int) -> None:
    values = annotation.keypoints or ()
    points = [
        (float(values[i]) * scale, float(values[i + 1]) * scale, values[i + 2]) for i in range(0, len(values) - 2, 3)
    ]
    colour = annotation_colour(annotation)
    darker = (colour[0] // 2, colour[1] // 2, colour[2] // 2)  # edges stand out on the mask's fill
    for first, second in annotation.skeleton or ():
        if 1 <= first <= len(points) and 1 <= second <= len(points):
            a, b = points[first - 1], points[second - 1]
            if a[2] > 0 and b[2] > 0:
                pen.line([a[:2], b[:2]], fill=darker, width=width + 1)
    radius = max(3, width * 2 + 2)
    for x, y, visibility in points:
        box = [x - radius, y - radius, x + radius, y + radius]
        if visibility == 2:
            pen.ellipse(box, fill=colour, outline=(0, 0, 0), width=max(1, width))
        elif visibility == 1:
            pen.ellipse(box, fill=(255, 255, 255), outline=darker, width=max(2, width))


def _label_tag(pen: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
               annotation: Annotation, scale: int) -> None:
    x, y = float((annotation.bbox or (0, 0))[0]) * scale, float((annotation.bbox or (0, 0))[1]) * scale
    text = annotation.label or ""
    left, top, right, bottom = pen.textbbox((x + 2, y + 1), text, font=font)
    colour = annotation_colour(annotation)
    pen.rectangle([x, y, right + 2, bottom + 1], fill=colour)
    pen.text((x + 2, y + 1), text, fill=_ink(colour), font=font)


def _ink(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on `colour`."""
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def _text_lines(annotations: Sequence[Annotation]) -> list[str]:
    lines = [f"caption: {a.caption}" for a in annotations if a.caption is not None]
    labels = list(dict.fromkeys(a.label for a in annotations if a.kind == "label" and a.label is not None))
    if labels:
        lines.append("labels: " + ", ".join(labels))
    return lines


def _with_band(image: Image.Image, lines: list[str], font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> Image.Image:
    """The image with a band under it holding `lines`, wrapped to the band's width."""
    width = max(image.width, MIN_BAND_WIDTH)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [part for line in lines for part in _wrap(measure, line, font, width - 12)]
    line_height = TEXT_SIZE + 5
    band = len(wrapped) * line_height + 10
    result = Image.new("RGB", (width, image.height + band), BAND)
    result.paste(image, (0, 0))
    pen = ImageDraw.Draw(result)
    for number, line in enumerate(wrapped):
        pen.text((6, image.height + 5 + number * line_height), line, fill=(20, 20, 20), font=font)
    return result


def _wrap(pen: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy word wrap by measured width; a word longer than a line is cut."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if pen.textlength(candidate, font=font) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        while pen.textlength(word, font=font) > width and len(word) > 1:
            cut = len(word) - 1
            while cut > 1 and pen.textlength(word[:cut], font=font) > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current or not lines:
        lines.append(current)
    return lines


@functools.cache
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """DejaVu Sans where there is one (it covers most scripts' letters), else Pillow's own."""
    for path in _font_files():
        try:
            return ImageFont.truetype(str(path), TEXT_SIZE)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=TEXT_SIZE)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _font_files() -> list[Path]:
    """matplotlib's copy of DejaVu Sans (found without importing matplotlib), then Debian's."""
    files = []
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin:
        files.append(Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf")
    files.append(Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"))
    return [path for path in files if path.is_file()]


# -- dsrepo render ---------------------------------------------------------------------------

@dataclass
class RenderResult:
    """What `render_item` drew: the file written, the image, the sources whose annotations it
    shows, how many annotations, and notes for the user (a missing image file, say)."""

    path: Path
    subset: str
    file_name: str
    sources: list[str]
    annotations: int
    notes: list[str]


def one_image(items: Sequence[Item], key: str | int) -> list[Item]:
    """The items of the single image `key` names; several subsets or file names are an error."""
    images = {(item.subset, item.file_name) for item in items}
    if len(images) > 1:
        shown = ", ".join(f"{subset}/{name}" for subset, name in sorted(images)[:5])
        raise OptionError(f"'{key}' names {len(images)} different images ({shown}); choose one with --subset or --source")
    return list(items)


def render_item(
    project: Project, key: str | int, out: str | os.PathLike[str], rev: str | None = None, *, tasks: Sequence[str] | None = None,
    where: str | None = None, subset: str | None = None, source: str | None = None, scale: int = 1,
) -> RenderResult:
    """Draw the image a file name or COCO image id names, with its annotations (of `tasks`,
    selected by `where`), into the image file `out` (PNG, or any format Pillow writes)."""
    out = Path(out)
    if scale < 1:
        raise OptionError(f"--scale must be a positive integer, got {scale}")
    found = find_items(project, key, rev, subset=subset, source=source, where=where, tasks=tasks)
    if not found:
        raise NotFoundError(not_found(key, rev))
    items = one_image(found, key)
    picture = draw(items, scale=scale)
    annotations = sum(len(item.annotations) for item in items)
    if where and annotations == 0:
        picture.notes.append("no annotation of this image matches --where")
    _save(picture.image, out)
    return RenderResult(out, items[0].subset, items[0].file_name, [item.source for item in items], annotations, picture.notes)


def _save(image: Image.Image, out: Path) -> None:
    if out.is_dir():
        raise OutputError(f"{out} is a folder; -o takes the path of the image to write, e.g. {out / 'item.png'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        image.save(out)
    except (ValueError, KeyError):
        raise OutputError(f"{out}: unknown image format '{out.suffix}'; use .png or .jpg") from None
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc}") from None
