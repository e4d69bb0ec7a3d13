"""Panoptic PNG -> id map -> per-segment RLE, the fast path: libspng's decoder must give Pillow's
pixels for every kind of PNG a user can hand in, and the runs cut from the id map must be
exactly what pycocotools encodes from each segment's boolean mask."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from gen_coco import generate
from helpers import DATA
from repo._internal.parallel import Workers
from repo.coco.panoptic import (  # _spng_id_map: the fast path, checked to be taken
    OverlapError, PaintJob, _spng_id_map, decode_id_map, encode_png, paint_id_map, paint_job, png_header, read_id_map,
    segment_masks,
)
from repo.errors import InputError

RNG = np.random.default_rng(7)
IDS = RNG.integers(0, 1 << 24, size=(37, 53), dtype=np.uint32)
IDS[5:20, 10:30] = 123456
RGB = np.stack([(IDS >> shift) & 255 for shift in (0, 8, 16)], axis=-1).astype(np.uint8)


def pillow_id_map(data: bytes) -> np.ndarray:
    """The oracle: Pillow converts any PNG to RGBA; the id is R + 256 G + 256^2 B."""
    rgba = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"), dtype=np.uint32)
    return rgba[..., 0] + (rgba[..., 1] << 8) + (rgba[..., 2] << 16)


def saved(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def hand_written(pixels: np.ndarray, colour: int, depth: int, interlace: bool = False) -> bytes:
    """A PNG Pillow cannot write (16-bit RGB, Adam7 interlacing), written with zlib, filter 0."""
    height, width = pixels.shape[:2]

    def scanlines(block: np.ndarray) -> bytes:
        rows = block.reshape(block.shape[0], -1).view(np.uint8)
        return b"".join(b"\x00" + row.tobytes() for row in rows)

    if interlace:
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        raw = b"".join(scanlines(pixels[y::dy, x::dx]) for x, y, dx, dy in passes if pixels[y::dy, x::dx].size)
    else:
        raw = scanlines(pixels)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, int(interlace))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


ODD_PNGS = {
    "rgb8": saved(Image.fromarray(RGB, "RGB")),
    "rgb8 optimized": saved(Image.fromarray(RGB, "RGB"), optimize=True),
    "rgba8 random alpha": saved(Image.fromarray(
        np.concatenate([RGB, RNG.integers(0, 256, (37, 53, 1), dtype=np.uint8)], axis=-1), "RGBA")),
    "palette": saved(Image.fromarray(RGB[..., 0] % 16, "L").convert("P")),
    "gray8": saved(Image.fromarray(RGB[..., 0], "L")),
    "gray16": saved(Image.fromarray((IDS & 0xFFFF).astype(np.uint16))),
    "rgb8 with tRNS": saved(Image.fromarray(RGB, "RGB"), transparency=(1, 2, 3)),
    "rgb16": hand_written(np.stack([(IDS & 0xFFFF).astype(">u2")] * 3, axis=-1), colour=2, depth=16),
    "rgb8 adam7": hand_written(RGB, colour=2, depth=8, interlace=True),
}


@pytest.mark.parametrize("kind", list(ODD_PNGS))
def test_every_kind_of_png_decodes_to_pillows_pixels(kind: str):
    data = ODD_PNGS[kind]
    assert np.array_equal(decode_id_map(data), pillow_id_map(data))


def test_generated_and_real_pngs_decode_to_pillows_pixels(tmp_path: Path):
    generate(tmp_path, images=12, seed=3, tasks=("panoptic",))
    pngs = sorted(tmp_path.rglob("*.png")) + sorted((DATA / "panopticapi_sample").rglob("*.png"))
    assert len(pngs) >= 12
    for png in pngs:
        data = png.read_bytes()
        width, height, depth, colour = png_header(data)
        assert (depth, colour) == (8, 2)  # the fast decoder's case, and it takes it
        assert np.array_equal(_spng_id_map(data, width, height, 3), pillow_id_map(data)), png
        assert np.array_equal(decode_id_map(data), pillow_id_map(data)), png


def test_header_gives_the_size_before_decoding():
    assert png_header(ODD_PNGS["rgb8"]) == (53, 37, 8, 2)
    assert png_header(ODD_PNGS["gray16"]) == (53, 37, 16, 0)
    assert png_header(b"GIF89a" + bytes(40)) is None


def test_a_corrupt_png_names_the_file(tmp_path: Path):
    data = bytearray(ODD_PNGS["rgb8"])
    data[60:80] = bytes(20)  # inside the compressed pixels
    path = tmp_path / "broken.png"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as caught:
        read_id_map(path, "panoptic/broken.png", "annotation for image id 1", 53, 37)
    assert str(caught.value).startswith(
        "panoptic/broken.png: annotation for image id 1: field 'file_name': the PNG cannot be read ("
    )


def test_a_png_of_the_wrong_size_is_refused_from_its_header(tmp_path: Path):
    path = tmp_path / "small.png"
    path.write_bytes(ODD_PNGS["rgb8"])
    with pytest.raises(InputError, match="the PNG is 53x37 pixels, but the image is 54x37"):
        read_id_map(path, "p.png", "annotation for image id 1", 54, 37)


def random_segments(height: int, width: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """An id map of a few rectangles and blobs over void, ids up to 2^24 - 1."""
    rng = np.random.default_rng(seed)
    id_map = np.zeros((height, width), dtype=np.uint32)
    ids = [int(i) for i in rng.choice(np.arange(1, 1 << 24), size=6, replace=False)]
    for segment_id in ids:
        top, left = rng.integers(0, height), rng.integers(0, width)
        id_map[top:top + rng.integers(1, height + 1), left:left + rng.integers(1, width + 1)] = segment_id
        id_map[rng.random((height, width)) < 0.02] = segment_id
    return id_map, [i for i in ids if (id_map == i).any()]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (23, 1), (31, 47), (64, 64)])
def test_segment_masks_are_pycocotools_encoding_of_each_mask(shape: tuple[int, int], seed: int):
    id_map, ids = random_segments(*shape, seed)
    ids = ids[::-1]  # any listed order comes back in that order
    expected = [coco_mask.encode(np.asfortranarray(id_map == i, dtype=np.uint8))["counts"] for i in ids]
    assert segment_masks(id_map, 1, ids, "p.png") == expected


def test_a_map_filling_the_last_pixel_and_void_edges():
    id_map = np.zeros((5, 4), dtype=np.uint32)
    id_map[:, 0] = 3  # first column
    id_map[4, 3] = 9  # the last pixel in column-major order
    id_map[0, 1:] = 9
    expected = [coco_mask.encode(np.asfortranarray(id_map == i, dtype=np.uint8))["counts"] for i in (9, 3)]
    assert segment_masks(id_map, 1, [9, 3], "p.png") == expected


def test_an_all_void_map_has_no_segments():
    void = np.zeros((3, 4), dtype=np.uint32)
    assert segment_masks(void, 1, [], "p.png") == []
    with pytest.raises(InputError, match="segment id 2 of image id 1: field 'id': the segment has no pixels"):
        segment_masks(void, 1, [2], "p.png")


def test_unlisted_and_missing_segments_are_named():
    id_map = np.array([[0, 4], [7, 7]], dtype=np.uint32)
    with pytest.raises(InputError, match="the PNG paints segment id 4, which segments_info does not list"):
        segment_masks(id_map, 2, [7], "p.png")
    with pytest.raises(InputError, match="segment id 5 of image id 2: field 'id': the segment has no pixels"):
        segment_masks(id_map, 2, [4, 7, 5], "p.png")


def test_worker_threads_keep_the_order_of_the_jobs(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DSREPO_WORKERS", "3")
    with Workers(50) as workers:
        assert list(workers.map(lambda n: n * n, range(50))) == [n * n for n in range(50)]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (13, 1), (31, 47)])
def test_painted_and_encoded_pngs_hold_the_segments_pixels(shape: tuple[int, int], seed: int):
    id_map, ids = random_segments(*shape, seed)
    masks = segment_masks(id_map, 1, ids, "p.png")
    painted = paint_id_map(list(zip(ids, masks)), *shape)
    for layout in (painted, np.ascontiguousarray(painted)):  # as painted, and row-major
        data = encode_png(layout)
        assert np.array_equal(pillow_id_map(data), id_map)


def painted_png_pixels(id_map: np.ndarray, ids: list[int]) -> np.ndarray:
    """Paint the map from pycocotools' encoding of each segment, encode, decode with Pillow."""
    masks = [coco_mask.encode(np.asfortranarray(id_map == i, dtype=np.uint8))["counts"] for i in ids]
    painted = paint_id_map(list(zip(ids, masks)), *id_map.shape)
    assert np.array_equal(painted, id_map)
    return pillow_id_map(encode_png(painted))


def many_segments(height: int, width: int, count: int, seed: int) -> np.ndarray:
    """Every pixel in one of `count` segments (ids spread up to 2^24 - 1) or void."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.arange(1, 1 << 24), size=count, replace=False).astype(np.uint32)
    return np.append(ids, 0)[rng.integers(0, count + 1, size=(height, width))]


@pytest.mark.parametrize("id_map", [
    np.array([[77]], dtype=np.uint32),  # one pixel, one segment
    np.array([[0]], dtype=np.uint32),  # one void pixel
    np.full((7, 13), (1 << 24) - 1, dtype=np.uint32),  # one segment covering everything, top id
    np.full((1, 641), 70000, dtype=np.uint32),  # one row, an id above 2^16
    np.full((479, 1), 65536, dtype=np.uint32),  # one column
    many_segments(31, 997, 300, seed=1),  # many segments, many short runs, an odd width
    many_segments(97, 3, 2, seed=2),
], ids=["1px", "1px void", "all one segment", "one row", "one column", "300 segments", "3 wide"])
def test_painted_pngs_decode_to_the_segments_pixels_in_pillow(id_map: np.ndarray):
    ids = [int(i) for i in np.unique(id_map) if i]
    assert np.array_equal(painted_png_pixels(id_map, ids), id_map)


def test_a_segment_listed_with_no_runs_paints_nothing():
    id_map = np.array([[0, 5], [5, 0]], dtype=np.uint32)
    empty = coco_mask.encode(np.zeros((2, 2), dtype=np.uint8, order="F"))["counts"]
    five = coco_mask.encode(np.asfortranarray(id_map == 5, dtype=np.uint8))["counts"]
    assert np.array_equal(paint_id_map([(9, empty), (5, five)], 2, 2), id_map)
    assert np.array_equal(paint_id_map([], 2, 2), np.zeros((2, 2), dtype=np.uint32))


def test_overlapping_segments_are_named_and_no_png_is_written(tmp_path: Path):
    first, second = np.zeros((4, 6), dtype=np.uint8), np.zeros((4, 6), dtype=np.uint8)
    first[:2, :3], second[1:, 2:] = 1, 1  # pixel (1, 2) in both
    segments = tuple((i, coco_mask.encode(np.asfortranarray(m))["counts"]) for i, m in ((4, first), (8, second)))
    with pytest.raises(OverlapError):
        paint_id_map(segments, 4, 6)
    target = tmp_path / "p.png"
    assert paint_job(PaintJob(str(target), segments, 4, 6)) == (4, 8)
    assert not target.exists()
