"""`--image-ext` and `--merge-images`: where saved images go, under which name, in which format.

`plan_images` decides every image's path and the `file_name` the JSON files then use, before
anything is written: two different images that would land on one path (the same name in two
subsets with `--merge-images`, or `a.jpg` and `a.png` with `--image-ext .png`) are refused
then, naming both. Images with identical bytes, or identical pixels, share the path.

`reencode` writes an image in another format with Pillow. An image already in the target
format is copied as it is (no second JPEG generation). The lossless targets (PNG, BMP, TIFF,
WebP, which is written lossless) keep every pixel value; where the target cannot hold the
image's mode, the image is widened first (palette to RGB or RGBA, 1-bit to 8-bit gray...).
What cannot be kept is said in `Reencoded.loss`: JPEG compression, an alpha channel that is
not fully opaque dropped for a target without alpha (as Datumaro's OpenCV writer does), CMYK
converted to RGB. 16-bit and float images are refused for targets that cannot hold them.
EXIF and ICC data go along.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from repo.errors import ConflictError, InputError, OptionError

if TYPE_CHECKING:
    from PIL import Image

FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}
JPEG_QUALITY = 95  # OpenCV's default, so what Datumaro writes
# The modes each target format holds as they are.
_MODES = {
    "JPEG": {"L", "RGB", "CMYK"},
    "PNG": {"1", "L", "LA", "RGB", "RGBA", "I;16"},
    "BMP": {"1", "L", "RGB"},
    "TIFF": {"1", "L", "LA", "RGB", "RGBA", "I", "I;16", "F", "CMYK"},
    "WEBP": {"RGB", "RGBA"},
}
# Wider modes holding every pixel value of a mode, best first.
_WIDER = {"1": ("L", "RGB"), "L": ("RGB",), "LA": ("RGBA",), "PA": ("RGBA",), "YCbCr": ("RGB",), "I;16": ("I",)}
# Narrower modes that lose something, and what.
_NARROWER = {"RGBA": ("RGB", "alpha channel dropped"), "LA": ("L", "alpha channel dropped"), "CMYK": ("RGB", "CMYK converted to RGB")}


def normalised_ext(ext: str) -> str:
    """`png`, `.PNG` -> `.png`; an extension dsrepo cannot write is an OptionError."""
    value = ext.lower() if ext.startswith(".") else "." + ext.lower()
    if value not in FORMATS:
        raise OptionError(f"--image-ext {ext}: dsrepo writes {', '.join(FORMATS)}")
    return value


def renamed(file_name: str, ext: str) -> str:
    """The file name with extension `ext` (sub-folders kept; a name without one gains it)."""
    path = PurePosixPath(file_name)
    if path.suffix.lower() == ext:
        return file_name
    return str(path.with_suffix(ext)) if path.suffix else file_name + ext


@dataclass(frozen=True)
class Reencoded:
    data: bytes
    loss: str | None  # what changed in the pixels; None: every pixel value is kept


def reencode(data: bytes, ext: str, shown_as: str) -> Reencoded:
    """The image `data` in the format of `ext` (see the module docstring)."""
    from PIL import Image, UnidentifiedImageError  # on first use: an import or update does not load Pillow

    target = FORMATS[ext]
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(shown_as, None, None, f"the image cannot be read ({exc})") from None
    if image.format == target:
        return Reencoded(data, None)
    loss = "JPEG is lossy" if target == "JPEG" else None
    converted, narrowed = _fitting(image, target, shown_as)
    options: dict[str, object] = {key: image.info[key] for key in ("exif", "icc_profile") if image.info.get(key)}
    if target == "JPEG":
        options["quality"] = JPEG_QUALITY
    elif target == "WEBP":
        options.update(lossless=True, exact=True)  # exact: keep the colour of transparent pixels
    out = io.BytesIO()
    converted.save(out, target, **options)
    return Reencoded(out.getvalue(), ", ".join(reason for reason in (loss, narrowed) if reason) or None)


def _fitting(image: Image.Image, target: str, shown_as: str) -> tuple[Image.Image, str | None]:
    """The image in a mode the target holds, and what that cost (None: nothing)."""
    allowed = _MODES[target]
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in allowed:
        return image, None
    for wider in _WIDER.get(image.mode, ()):
        if wider in allowed:
            return image.convert(wider), None
    narrower = _NARROWER.get(image.mode)
    if narrower is not None:
        mode, reason = narrower
        if mode not in allowed:
            mode = "RGB"
        if reason.startswith("alpha") and image.getchannel("A").getextrema() == (255, 255):
            reason = None  # fully opaque: dropping alpha changes no pixel
        return image.convert(mode), reason
    raise InputError(
        shown_as, None, None,
        f"the image has mode {image.mode}, which {target} cannot hold without losing values; "
        "choose --image-ext .png or .tif",
    )


def same_pixels(first: bytes, second: bytes) -> bool:
    """Whether two image files decode to the same pixels (sizes, and values in a common mode)."""
    from PIL import Image

    with Image.open(io.BytesIO(first)) as a, Image.open(io.BytesIO(second)) as b:
        if a.size != b.size:
            return False
        if a.mode == b.mode:
            return a.tobytes() == b.tobytes()
        try:
            return a.convert("RGBA").tobytes() == b.convert("RGBA").tobytes()
        except ValueError:
            return False


# -- where each image goes --------------------------------------------------------------------

@dataclass(frozen=True)
class ImageEntry:
    """An image an export saves: its subset, the `file_name` the files give it, its content."""

    subset: str
    file_name: str
    sha256: str | None  # None: the image file is unavailable (it will not be written)


@dataclass
class ImagePlan:
    # (subset, file_name) -> path under images/ and the file_name every JSON writes
    paths: dict[tuple[str, str], str] = field(default_factory=dict)
    file_names: dict[tuple[str, str], str] = field(default_factory=dict)
    # one entry per path to write, the first image that lands there
    writes: list[tuple[ImageEntry, str]] = field(default_factory=list)


def plan_images(
    entries: Iterable[ImageEntry],
    *,
    merge: bool = False,
    ext: str | None = None,
    same: Callable[[ImageEntry, ImageEntry], bool] | None = None,
) -> ImagePlan:
    """Every image's path under `images/` (`<subset>/<file_name>`, or `<file_name>` with
    `merge`) and JSON `file_name` (with `ext`); raises ConflictError, before anything is
    written, when two different images would share a path. `same` compares two images whose
    bytes differ (by their pixels); without it, different bytes are different images."""
    plan = ImagePlan()
    first_at: dict[str, ImageEntry] = {}
    for entry in entries:
        key = (entry.subset, entry.file_name)
        if key in plan.paths:
            continue
        file_name = renamed(entry.file_name, ext) if ext else entry.file_name
        path = file_name if merge else f"{entry.subset}/{file_name}"
        plan.paths[key] = path
        plan.file_names[key] = file_name
        other = first_at.get(path)
        if other is None or (other.sha256 is None and entry.sha256 is not None):
            first_at[path] = entry  # an available image replaces an unavailable one
        elif not _same_image(other, entry, same):
            why = "--merge-images puts every subset in images/" if merge else "--image-ext gives them one name"
            raise ConflictError(
                f"images/{path} would hold two different images, {other.subset}/{other.file_name} and "
                f"{entry.subset}/{entry.file_name} ({why})"
            )
    plan.writes = [(entry, path) for path, entry in first_at.items()]
    return plan


def _same_image(first: ImageEntry, second: ImageEntry, same: Callable[[ImageEntry, ImageEntry], bool] | None) -> bool:
    if first.sha256 is None or second.sha256 is None or first.sha256 == second.sha256:
        return True  # an unavailable image is not written, so it cannot clash
    return same is not None and same(first, second)
