"""Panoptic PNGs <-> one RLE mask per segment, vectorized with numpy.

A panoptic PNG paints every pixel with the id of the segment it belongs to, as
id = R + 256 G + 256^2 B (0 = void). Importing turns the id map into runs in COCO's
column-major order once, then cuts each segment's mask out of those runs: no per-pixel Python,
no pass over the image per segment. Exporting does the reverse: the runs of all segments of
an image, sorted, become the id map with one `np.repeat`.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from isal import isal_zlib
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as coco_mask

from repo.coco.rle import RleError, check_compressible, decode_strings
from repo.errors import InputError
from repo.model.hashing import segment_hash, segments_fingerprint
from repo.model.paths import Stamp, read_real_file, stamp
from repo.model.records import RLE_STRING, PanopticRecord

# Masks of this many pixels can have runs pycocotools' encoder cannot take (see repo.coco.rle).
HUGE_MASK = 1 << 24
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COMPRESS_LEVEL = 1  # ISA-L's level 1: 9x faster than zlib's level 3 here, and files ~9% smaller


def png_header(data: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk; None if the bytes do
    not start like a PNG. Lets the size be checked before anything is decoded."""
    if len(data) < 29 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, colour


@functools.cache
def _opencv():
    """cv2, imported on first use (it costs a tenth of a second) and kept to one thread per
    call: work is spread over threads by the caller."""
    import cv2

    cv2.setNumThreads(1)
    return cv2


@functools.cache
def _spng_decode():
    """imagecodecs' libspng decoder, imported on first use."""
    from imagecodecs import spng_decode

    return spng_decode


def decode_id_map(data: bytes) -> np.ndarray:
    """The id map of a panoptic PNG's bytes; raises what Pillow raises for a file it cannot read.

    8-bit RGB and RGBA files (what panopticapi and every COCO tool write) are decoded by
    libspng (imagecodecs, whose inflate is zlib-ng's): 40% less CPU than OpenCV's libpng and
    half Pillow's, and it releases the GIL, so decoding spreads over cores. Every other kind of
    PNG (16 bits, grey, palette), one larger than Pillow allows, and anything libspng refuses
    go to Pillow, whose reading is the reference (tests/test_panoptic_decode.py checks that
    both give the same pixels).
    """
    header = png_header(data)
    if header is not None and header[2] == 8 and header[3] in (2, 6) and _within_pillows_limit(header):
        ids = _spng_id_map(data, header[0], header[1], 3 if header[3] == 2 else 4)
        if ids is not None:
            return ids
    with Image.open(io.BytesIO(data)) as png:
        png.load()
        rgba = png.convert("RGBA")
    # Little-endian RGBA words are R + 256 G + 256^2 B + 256^3 A; dropping A leaves the id.
    return np.frombuffer(rgba.tobytes(), dtype="<u4").reshape(rgba.size[1], rgba.size[0]) & 0xFFFFFF


def _spng_id_map(data: bytes, width: int, height: int, channels: int) -> np.ndarray | None:
    """The id map of an 8-bit RGB (3 channels) or RGBA (4) PNG, None if libspng refuses it.

    The pixels are decoded into a buffer one byte longer than they are; each pixel's id is then
    read as a little-endian word starting at its R byte (R, G, B and one byte more: the next
    pixel's R, alpha, or the spare byte), its top byte masked off. One pass, and no OpenCV
    to load for a conversion to RGBA."""
    buffer = np.empty(height * width * channels + 1, dtype=np.uint8)
    try:
        _spng_decode()(data, out=buffer[:-1].reshape(height, width, channels))
    except Exception:  # imagecodecs' SpngError, or a shape it would not fill: Pillow decides
        return None
    words = np.ndarray((height, width), dtype="<u4", buffer=buffer, strides=(width * channels, channels))
    return words & 0xFFFFFF


def _within_pillows_limit(header: tuple[int, int, int, int]) -> bool:
    """Whether Pillow would decode a PNG this large: a bigger one is left to Pillow, which
    refuses it (a decompression bomb) before it allocates the pixels."""
    limit = Image.MAX_IMAGE_PIXELS
    return limit is None or header[0] * header[1] <= 2 * limit


def read_id_map(path: Path, shown_as: str, record: str, width: int, height: int) -> np.ndarray:
    """The segment id of every pixel of a panoptic PNG, checked against the image's size."""
    return id_map_of(read_png(path, shown_as, record), shown_as, record, width, height)


def read_png(path: Path, shown_as: str, record: str) -> bytes:
    """A panoptic PNG's bytes, from its real path (a symlink swapped in since that path was
    found is refused: see repo.model.paths); an InputError naming the file if there are none."""
    try:
        return read_real_file(path)
    except FileNotFoundError:
        raise InputError(shown_as, record, "file_name", "the PNG file does not exist") from None
    except OSError as exc:
        raise InputError(shown_as, record, "file_name", f"the PNG cannot be read ({exc})") from None


def id_map_of(data: bytes, shown_as: str, record: str, width: int, height: int) -> np.ndarray:
    """The id map of a PNG's bytes, checked against the image's size.

    The size is read from the PNG's header first: a PNG of the wrong size is refused before
    its pixels are decoded (a lying or huge one costs nothing)."""
    header = png_header(data)
    if header is not None and header[:2] != (width, height):
        raise _size_error(shown_as, record, header[:2], width, height)
    try:
        id_map = decode_id_map(data)
    except UnidentifiedImageError:  # Pillow's message names its in-memory buffer, not the file
        raise InputError(shown_as, record, "file_name", "the PNG cannot be read (not an image Pillow knows)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(shown_as, record, "file_name", f"the PNG cannot be read ({exc})") from None
    if id_map.shape != (height, width):
        raise _size_error(shown_as, record, id_map.shape[::-1], width, height)
    return id_map


def _size_error(shown_as: str, record: str, size: tuple[int, int], width: int, height: int) -> InputError:
    return InputError(
        shown_as, record, "file_name",
        f"the PNG is {size[0]}x{size[1]} pixels, but the image is {width}x{height} (width x height)",
    )


def column_run_starts(id_map: np.ndarray) -> np.ndarray:
    """Where runs of equal ids start in COCO's column-major order (0 included), found on the
    row-major map: a pixel differs from the one above it, or a column's first pixel differs
    from the previous column's last. A COCO map has a few thousand runs, so sorting their
    indexes costs far less than a transposed copy of every pixel; found row after row, they
    are one sorted stretch per row, which a merge sort joins in half quicksort's time."""
    height, width = id_map.shape
    below = np.flatnonzero(id_map[1:] != id_map[:-1])  # (row - 1) * width + column
    rows, columns = np.divmod(below, width)
    heads = (np.flatnonzero(id_map[0, 1:] != id_map[-1, :-1]) + 1) * height
    starts = np.concatenate(([0], columns * height + rows + 1, heads))
    starts.sort(kind="stable")
    return starts


def segment_masks(id_map: np.ndarray, image_id: int, segment_ids: Sequence[int], png_shown: str) -> list[bytes]:
    """The compressed RLE of each listed segment; every painted id must be listed.

    One pass over the id map finds its column-major runs; grouping them by id (a stable sort
    keeps pixel order) gives every segment's runs, and pycocotools compresses all segments'
    counts in one call.
    """
    height, width = id_map.shape
    total = height * width
    starts = column_run_starts(id_map)
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = total
    values = id_map[starts % height, starts // height]
    painted = values != 0
    starts, ends, values = starts[painted], ends[painted], values[painted]
    order = np.argsort(values, kind="stable")  # group runs by id, keeping pixel order within
    starts, ends, values = starts[order], ends[order], values[order]
    boundary = np.flatnonzero(values[1:] != values[:-1]) + 1
    first = np.concatenate(([0], boundary)) if values.size else boundary  # an all-void map has no runs
    bounds = dict(zip(values[first].tolist(), zip(first.tolist(), np.append(boundary, values.size).tolist())))
    unlisted = sorted(set(bounds) - set(segment_ids))
    if unlisted:
        raise InputError(
            png_shown, f"annotation for image id {image_id}", "segments_info",
            f"the PNG paints segment id {unlisted[0]}, which segments_info does not list",
        )
    runs_per_segment = []
    for segment_id in segment_ids:
        span = bounds.get(segment_id)
        if span is None:
            raise InputError(
                png_shown, f"segment id {segment_id} of image id {image_id}", "id",
                "the segment has no pixels in the PNG",
            )
        seg_starts, seg_ends = starts[span[0]:span[1]], ends[span[0]:span[1]]
        counts = np.empty(2 * seg_starts.size + 1, dtype=np.uint32)
        counts[0] = seg_starts[0]
        counts[2:-1:2] = seg_starts[1:] - seg_ends[:-1]
        counts[1::2] = seg_ends - seg_starts
        counts[-1] = total - seg_ends[-1]
        if counts[-1] == 0:  # pycocotools ends on the last run of ones
            counts = counts[:-1]
        runs_per_segment.append({"counts": counts, "size": [height, width]})
    if not runs_per_segment:
        return []
    if total >= HUGE_MASK:
        for segment_id, runs in zip(segment_ids, runs_per_segment):
            try:
                check_compressible(runs["counts"])
            except RleError as exc:
                raise InputError(png_shown, f"segment id {segment_id} of image id {image_id}", "id", str(exc)) from None
    return [rle["counts"] for rle in coco_mask.frPyObjects(runs_per_segment, height, width)]


@dataclass(frozen=True)
class DecodeJob:
    """One panoptic record to decode, on a worker thread."""

    png_path: str
    # The PNG's real path, inside the dataset folder (repo.model.paths.FolderFiles); None for a
    # PNG that is missing, or whose symlinks lead out of the folder.
    real_path: str | None
    png_shown: str
    image_id: int
    width: int
    height: int
    segment_ids: tuple[int, ...]
    # An update's masks of the PNG as last imported: used, not decoded, if the bytes are these,
    # which the `stat` stamp remembered with them (see store.file_digests) tells without reading.
    known_sha256: str | None = None
    known_masks: tuple[bytes, ...] | None = None
    remembered: tuple[Stamp, str] | None = None


@dataclass(frozen=True)
class Decoded:
    """A PNG's masks, one per listed segment, and the SHA-256 of the bytes they came from."""

    masks: list[bytes]
    sha256: str
    status: os.stat_result | None  # the PNG's `stat` before it was read (None: not looked at)
    decoded: bool = True  # False: the bytes were those last imported, the masks the kept ones


def decode_job(job: DecodeJob) -> Decoded | tuple[str, str | None, str | None, str]:
    """The segments' masks, or the parts of an InputError, for the caller to report in order."""
    record = f"annotation for image id {job.image_id}"
    try:
        if job.real_path is None:
            raise InputError(job.png_shown, record, "file_name", _unreadable_png_problem(job.png_path))
        try:
            status: os.stat_result | None = os.stat(job.real_path)
        except OSError:
            status = None  # read_png says why
        if job.known_masks is not None and job.remembered is not None and status is not None:
            remembered_stamp, remembered_sha256 = job.remembered
            if remembered_sha256 == job.known_sha256 and remembered_stamp == stamp(status):
                return Decoded(list(job.known_masks), remembered_sha256, None, decoded=False)
        data = read_png(Path(job.real_path), job.png_shown, record)
        sha256 = hashlib.sha256(data).hexdigest()
        if job.known_masks is not None and sha256 == job.known_sha256:
            return Decoded(list(job.known_masks), sha256, status, decoded=False)
        id_map = id_map_of(data, job.png_shown, record, job.width, job.height)
        masks = segment_masks(id_map, job.image_id, job.segment_ids, job.png_shown)
        return Decoded(masks, sha256, status)
    except InputError as error:
        return (error.file, error.record, error.field, error.problem)


def _unreadable_png_problem(path: str) -> str:
    if os.path.lexists(path):
        return "the PNG leads out of the dataset folder (a symlink) or is not a file; dsrepo does not read it"
    return "the PNG file does not exist"


class OverlapError(ValueError):
    def __init__(self, first: int, second: int):
        super().__init__(f"segments {first} and {second} cover the same pixel")
        self.first, self.second = first, second


def paint_id_map(segments: Sequence[tuple[int, bytes]], height: int, width: int) -> np.ndarray:
    """The id map of non-overlapping segments given as (id, compressed RLE); void is 0.

    All segments' strings are read at once; their runs of ones, sorted, alternate with the
    void between them, and one `np.repeat` paints the whole map in column-major order."""
    total = height * width
    runs, offsets = decode_strings([counts for _, counts in segments])
    first = np.repeat(offsets[:-1], np.diff(offsets))  # each run's segment's first run
    edges = np.cumsum(runs)
    edges -= edges[first] - runs[first]  # pixels up to the end of each run, per segment
    ones = np.flatnonzero((np.arange(runs.size) - first) & 1)
    ones = ones[runs[ones] > 0]
    segment_ids = np.fromiter((segment_id for segment_id, _ in segments), dtype=np.uint32, count=len(segments))
    ends = edges[ones]
    order = np.argsort(ends - runs[ones], kind="stable")
    ends = ends[order]
    starts = ends - runs[ones][order]
    ids = segment_ids[np.searchsorted(offsets, ones[order], side="right") - 1]
    clash = np.flatnonzero(starts[1:] < ends[:-1])
    if clash.size:
        raise OverlapError(int(ids[clash[0]]), int(ids[clash[0] + 1]))
    values = np.zeros(2 * starts.size + 1, dtype=np.uint32)
    values[1::2] = ids
    lengths = np.empty(2 * starts.size + 1, dtype=np.int64)
    lengths[0] = starts[0] if starts.size else total
    lengths[2:-1:2] = starts[1:] - ends[:-1]
    lengths[1::2] = ends - starts
    lengths[-1] = total - (ends[-1] if ends.size else 0)
    return np.repeat(values, lengths).reshape(width, height).T


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(id_map: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of the id map (R = id % 256, G = id // 256 % 256, B = id // 256^2).

    Written directly with no row filter: panoptic maps are large flat areas that deflate packs
    well on its own. The deflate stream is ISA-L's (python-isal), a standard zlib stream any
    PNG reader inflates, written in a tenth of zlib's time. OpenCV turns the column-major map
    that `paint_id_map` paints into rows (one blocked transpose), then drops each pixel's top
    byte straight into the scanlines, after their filter bytes: no strided numpy copy.
    """
    height, width = id_map.shape
    cv2 = _opencv()
    if id_map.T.flags.c_contiguous:  # paint_id_map's (width, height) array, seen transposed
        rows = cv2.transpose(id_map.T.view(np.int32))
    else:
        rows = np.ascontiguousarray(id_map).view(np.int32)
    scanlines = np.empty((height, 1 + 3 * width), dtype=np.uint8)
    scanlines[:, 0] = 0
    cv2.cvtColor(rows.view(np.uint8).reshape(height, width, 4), cv2.COLOR_RGBA2RGB,
                 dst=scanlines[:, 1:].reshape(height, width, 3))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join((
        PNG_SIGNATURE,
        _chunk(b"IHDR", header),
        _chunk(b"IDAT", isal_zlib.compress(scanlines, PNG_COMPRESS_LEVEL)),
        _chunk(b"IEND", b""),
    ))


@dataclass(frozen=True)
class PaintJob:
    """One PNG to paint and write, on a worker thread."""

    target: str
    segments: tuple[tuple[int, bytes], ...]
    height: int
    width: int


def paint_job(job: PaintJob) -> tuple[int, int] | None:
    """Write the PNG; on overlapping segments write nothing and return the two ids."""
    try:
        id_map = paint_id_map(job.segments, job.height, job.width)
    except OverlapError as exc:
        return exc.first, exc.second
    Path(job.target).write_bytes(encode_png(id_map))
    return None


@dataclass(frozen=True)
class KeptJob:
    """A kept PNG to write as it was imported, on a worker thread."""

    target: str
    data: bytes


def png_job(job: PaintJob | KeptJob) -> tuple[int, int] | None:
    """Write a kept PNG, or paint one (see `paint_job`)."""
    if isinstance(job, KeptJob):
        Path(job.target).write_bytes(job.data)
        return None
    return paint_job(job)


def attach_segment_masks(record: PanopticRecord, masks: Sequence[bytes]) -> None:
    """Give each segment of a panoptic record its mask (compressed RLE, from
    `segment_masks`) and a content hash that covers the mask; the record gets the fingerprint
    of the pixels its PNG paints."""
    for segment, rle in zip(record.segments, masks):
        segment["rle"] = rle
        segment["rle_form"] = RLE_STRING
        segment["hash"] = segment_hash(segment["hash"], rle)
    record.png_segments_hash = segments_fingerprint(
        (segment["coco_id"], rle) for segment, rle in zip(record.segments, masks)
    )
