"""--image-ext and --merge-images: re-encoded pixels judged by Pillow, paths planned before writing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from helpers import DATA
from repo.errors import ConflictError, InputError, OptionError
from repo.transforms.images import ImageEntry, normalised_ext, plan_images, reencode, renamed, same_pixels

REAL_JPEG = DATA / "panopticapi_sample" / "coco" / "images" / "val2017" / "000000142238.jpg"


def _encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _values(data: bytes, mode: str) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert(mode))


def _sample(mode: str, alpha: int | None = None) -> Image.Image:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (7, 9, 4), dtype=np.uint8)
    rgba[..., 3] = rgba[..., 3] if alpha is None else alpha
    image = Image.fromarray(rgba, "RGBA")
    if mode == "P":
        return image.convert("RGB").quantize(16)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (7, 9), dtype=np.uint16))
    return image.convert(mode) if mode != "RGBA" else image


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".webp"])
@pytest.mark.parametrize(("mode", "compare_as"), [
    ("RGB", "RGB"), ("L", "L"), ("1", "L"), ("P", "RGB"), ("RGBA", "RGBA"), ("LA", "LA"),
])
def test_lossless_targets_keep_every_pixel_value(ext, mode, compare_as):
    source = _encoded(_sample(mode), "TIFF" if ext != ".tif" else "PNG")
    result = reencode(source, ext, "images/a")
    has_alpha = mode in ("RGBA", "LA")
    if has_alpha and ext == ".bmp":
        assert result.loss == "alpha channel dropped"
        compare_as = "RGB" if mode == "RGBA" else "L"
    else:
        assert result.loss is None
    with Image.open(io.BytesIO(result.data)) as written:
        assert written.format == {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".webp": "WEBP"}[ext]
    assert np.array_equal(_values(result.data, compare_as), _values(source, compare_as))


def test_a_real_jpeg_as_png_keeps_its_decoded_pixels():
    data = REAL_JPEG.read_bytes()
    result = reencode(data, ".png", str(REAL_JPEG))
    assert result.loss is None
    assert np.array_equal(_values(result.data, "RGB"), _values(data, "RGB"))


def test_the_same_format_is_copied_not_encoded_again():
    data = REAL_JPEG.read_bytes()
    assert reencode(data, ".jpeg", "a.jpg") == reencode(data, ".jpg", "a.jpg")
    assert reencode(data, ".jpg", "a.jpg").data == data


def test_jpeg_says_what_it_loses():
    assert reencode(_encoded(_sample("RGB")), ".jpg", "a").loss == "JPEG is lossy"
    opaque = reencode(_encoded(_sample("RGBA", alpha=255)), ".jpg", "a")
    assert opaque.loss == "JPEG is lossy"  # alpha was 255 everywhere: dropping it loses nothing
    transparent = reencode(_encoded(_sample("RGBA")), ".jpg", "a")
    assert transparent.loss == "JPEG is lossy, alpha channel dropped"
    with Image.open(io.BytesIO(transparent.data)) as image:
        assert (image.format, image.mode) == ("JPEG", "RGB")


def test_sixteen_bit_images_are_refused_where_they_cannot_go():
    data = _encoded(_sample("I;16"))
    assert np.array_equal(_values(reencode(data, ".tif", "d.png").data, "I"), _values(data, "I"))
    with pytest.raises(InputError) as error:
        reencode(data, ".jpg", "images/train/d.png")
    assert str(error.value) == (
        "images/train/d.png: the image has mode I;16, which JPEG cannot hold without losing values; "
        "choose --image-ext .png or .tif"
    )


def test_an_unreadable_image_is_named():
    with pytest.raises(InputError, match=r"^images/x.jpg: the image cannot be read"):
        reencode(b"not an image", ".png", "images/x.jpg")


def test_extensions_and_names():
    assert [normalised_ext(e) for e in ("png", ".PNG", "jpeg", ".Tiff")] == [".png", ".png", ".jpeg", ".tiff"]
    with pytest.raises(OptionError, match=r"^--image-ext \.gif: dsrepo writes \.jpg, \.jpeg, \.png"):
        normalised_ext(".gif")
    assert renamed("sub dir/q.jpg", ".png") == "sub dir/q.png"
    assert renamed("a.b.JPG", ".png") == "a.b.png"
    assert renamed("noext", ".png") == "noext.png"
    assert renamed("x.PNG", ".png") == "x.PNG"  # already that extension: the name stays


def test_same_pixels_compares_decoded_values():
    image = _sample("RGB")
    assert same_pixels(_encoded(image, "PNG"), _encoded(image, "BMP"))
    assert same_pixels(_encoded(image.convert("L")), _encoded(image.convert("L").convert("RGB")))
    assert not same_pixels(_encoded(image), _encoded(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    assert not same_pixels(_encoded(image), _encoded(image.resize((9, 9))))


def test_a_plan_keeps_subsets_apart_and_names_as_they_are():
    entries = [ImageEntry("train", "a.jpg", "1"), ImageEntry("val", "a.jpg", "2"), ImageEntry("val", "sub/b.jpg", "3")]
    plan = plan_images(entries)
    assert plan.paths == {("train", "a.jpg"): "train/a.jpg", ("val", "a.jpg"): "val/a.jpg", ("val", "sub/b.jpg"): "val/sub/b.jpg"}
    assert plan.file_names == {key: key[1] for key in plan.paths}
    assert [path for _, path in plan.writes] == ["train/a.jpg", "val/a.jpg", "val/sub/b.jpg"]


def test_merged_images_share_a_path_only_when_they_are_the_same_image():
    same_bytes = [ImageEntry("train", "a.jpg", "1"), ImageEntry("val", "a.jpg", "1")]
    plan = plan_images(same_bytes, merge=True)
    assert plan.paths == {("train", "a.jpg"): "a.jpg", ("val", "a.jpg"): "a.jpg"}
    assert plan.writes == [(same_bytes[0], "a.jpg")]
    other_bytes = [ImageEntry("train", "a.jpg", "1"), ImageEntry("val", "a.jpg", "2")]
    assert len(plan_images(other_bytes, merge=True, same=lambda a, b: True).writes) == 1  # same pixels
    with pytest.raises(ConflictError) as error:
        plan_images(other_bytes, merge=True, same=lambda a, b: False)
    assert str(error.value) == (
        "images/a.jpg would hold two different images, train/a.jpg and val/a.jpg "
        "(--merge-images puts every subset in images/)"
    )


def test_a_new_extension_renames_and_refuses_names_that_meet():
    plan = plan_images([ImageEntry("val", "sub/q.jpeg", "1"), ImageEntry("val", "r.bmp", "2")], ext=".png")
    assert plan.file_names == {("val", "sub/q.jpeg"): "sub/q.png", ("val", "r.bmp"): "r.png"}
    assert plan.paths == {("val", "sub/q.jpeg"): "val/sub/q.png", ("val", "r.bmp"): "val/r.png"}
    with pytest.raises(ConflictError, match=r"^images/val/a.png would hold two different images, val/a.jpg and val/a.bmp \(--image-ext gives them one name\)$"):
        plan_images([ImageEntry("val", "a.jpg", "1"), ImageEntry("val", "a.bmp", "2")], ext=".png")


def test_an_unavailable_image_clashes_with_nothing():
    plan = plan_images([ImageEntry("train", "a.jpg", None), ImageEntry("val", "a.jpg", "2")], merge=True, same=lambda a, b: False)
    assert plan.writes == [(ImageEntry("val", "a.jpg", "2"), "a.jpg")]
