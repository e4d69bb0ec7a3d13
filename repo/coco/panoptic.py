"""Panoptic PNGs <-> one RLE mask per segment, vectorized with numpy.

A panoptic PNG paints every pixel with the id of the segment it belongs to, as
id = R + 256 G + 256^2 B (0 = void). Importing turns the id map into runs in COCO's
column-major order once, then cuts each segment's mask out of those runs: no per-pixel Python,
no pass over the image per segment. Exporting does the reverse: the runs of all segments of
an image, sorted, become the id map with one `np.repeat`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as coco_mask

from repo.coco.records import RLE_STRING, PanopticRecord
from repo.coco.rle import decode_string
from repo.errors import InputError

PNG_COMPRESS_LEVEL = 3  # zlib level: level 6 (Pillow's default) costs ~3x the time for ~10% less size


def read_id_map(path: Path, shown_as: str, record: str, width: int, height: int) -> np.ndarray:
    """The segment id of every pixel of a panoptic PNG, checked against the image's size."""
    try:
        with Image.open(path) as png:
            png.load()
            rgb = png.convert("RGB")
    except FileNotFoundError:
        raise InputError(shown_as, record, "file_name", "the PNG file does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(shown_as, record, "file_name", f"the PNG cannot be read ({exc})") from None
    if rgb.size != (width, height):
        raise InputError(
            shown_as, record, "file_name",
            f"the PNG is {rgb.size[0]}x{rgb.size[1]} pixels, but the image is {width}x{height} (width x height)",
        )
    pixels = np.asarray(rgb, dtype=np.uint32)
    return pixels[..., 0] + (pixels[..., 1] << 8) + (pixels[..., 2] << 16)


def cut_segments(id_map: np.ndarray, record: PanopticRecord, png_shown: str) -> None:
    """Give each listed segment the RLE of its pixels; every painted id must be listed."""
    height, width = id_map.shape
    flat = id_map.T.ravel()  # column-major, as COCO's RLE counts run
    starts = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate(([0], starts))
    ends = np.concatenate((starts[1:], [flat.size]))
    values = flat[starts]
    painted = values != 0
    starts, ends, values = starts[painted], ends[painted], values[painted]
    order = np.argsort(values, kind="stable")  # group runs by id, keeping pixel order within
    starts, ends, values = starts[order], ends[order], values[order]
    ids, first = np.unique(values, return_index=True)
    bounds = dict(zip(ids.tolist(), zip(first.tolist(), np.append(first[1:], values.size).tolist())))
    where = f"annotation for image id {record.image_id}"
    listed = {segment["coco_id"] for segment in record.segments}
    unlisted = sorted(set(bounds) - listed)
    if unlisted:
        raise InputError(
            png_shown, where, "segments_info",
            f"the PNG paints segment id {unlisted[0]}, which segments_info does not list",
        )
    runs_per_segment = []
    for segment in record.segments:
        span = bounds.get(segment["coco_id"])
        if span is None:
            raise InputError(
                png_shown, f"segment id {segment['coco_id']} of image id {record.image_id}", "id",
                "the segment has no pixels in the PNG",
            )
        seg_starts, seg_ends = starts[span[0]:span[1]], ends[span[0]:span[1]]
        gaps = seg_starts - np.concatenate(([0], seg_ends[:-1]))
        counts = np.empty(2 * seg_starts.size + 1, dtype=np.uint32)
        counts[0:-1:2] = gaps
        counts[1::2] = seg_ends - seg_starts
        counts[-1] = flat.size - seg_ends[-1]
        if counts[-1] == 0:  # pycocotools ends on the last run of ones
            counts = counts[:-1]
        runs_per_segment.append({"counts": counts, "size": [height, width]})
    if not runs_per_segment:
        return
    encoded = coco_mask.frPyObjects(runs_per_segment, height, width)
    for segment, rle in zip(record.segments, encoded):
        segment["rle"] = rle["counts"]
        segment["rle_form"] = RLE_STRING


class OverlapError(ValueError):
    def __init__(self, first: int, second: int):
        super().__init__(f"segments {first} and {second} cover the same pixel")
        self.first, self.second = first, second


def paint_id_map(segments: Sequence[tuple[int, bytes]], height: int, width: int) -> np.ndarray:
    """The id map of non-overlapping segments given as (id, compressed RLE); void is 0."""
    total = height * width
    run_starts, run_ends, run_ids = [], [], []
    for segment_id, counts in segments:
        runs = decode_string(counts)
        edges = np.cumsum(runs)
        ones_ends = edges[1::2]
        ones_starts = ones_ends - runs[1::2]
        keep = ones_ends > ones_starts
        run_starts.append(ones_starts[keep])
        run_ends.append(ones_ends[keep])
        run_ids.append(np.full(int(keep.sum()), segment_id, dtype=np.uint32))
    if not run_starts:
        return np.zeros((height, width), dtype=np.uint32)
    starts, ends = np.concatenate(run_starts), np.concatenate(run_ends)
    ids = np.concatenate(run_ids)
    order = np.argsort(starts, kind="stable")
    starts, ends, ids = starts[order], ends[order], ids[order]
    clash = np.flatnonzero(starts[1:] < ends[:-1])
    if clash.size:
        raise OverlapError(int(ids[clash[0]]), int(ids[clash[0] + 1]))
    gaps = starts - np.concatenate(([0], ends[:-1]))
    values = np.zeros(2 * starts.size + 1, dtype=np.uint32)
    values[1::2] = ids
    lengths = np.empty(2 * starts.size + 1, dtype=np.int64)
    lengths[0:-1:2] = gaps
    lengths[1::2] = ends - starts
    lengths[-1] = total - (ends[-1] if ends.size else 0)
    flat = np.repeat(values, lengths)
    return flat.reshape(width, height).T


def encode_png(id_map: np.ndarray) -> bytes:
    rgb = np.stack([id_map & 0xFF, (id_map >> 8) & 0xFF, (id_map >> 16) & 0xFF], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()
