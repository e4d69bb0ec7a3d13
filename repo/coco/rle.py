"""COCO run-length encoded masks, checked before pycocotools ever sees them.

A mask is stored as COCO's compressed RLE string (the `counts` of `pycocotools.mask.encode`).
pycocotools does not bounds-check its input and can crash the process on a bad RLE, so every
RLE is decoded and checked here first, with numpy: the string alphabet, non-negative runs that
fit in 32 bits, and a total equal to height x width.

Compressed form: each run length is written in 5-bit groups (low group first) as characters
offset by 48, bit 0x20 meaning "more groups follow" and bit 0x10 of the last group the sign;
from the fourth run on, the value stored is the difference to the run two places before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as coco_mask

_MAX_GROUPS = 13  # pycocotools accumulates into a 64-bit long: 13 groups of 5 bits at most
_UINT32_LIMIT = 1 << 32


class RleError(ValueError):
    """The RLE is malformed; the message says how, for the caller to place in an InputError."""


def decode_string(counts: bytes) -> np.ndarray:
    """Run lengths of a compressed RLE string, exactly as pycocotools would read them."""
    codes = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if codes.size == 0:
        return codes
    if codes.min() < 0 or codes.max() > 63:
        raise RleError("counts string holds a character outside the RLE alphabet")
    more = (codes & 0x20) != 0
    if more[-1]:
        raise RleError("counts string ends in the middle of a run length")
    groups = codes & 0x1F
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > _MAX_GROUPS:
        raise RleError("counts string holds a run length longer than 64 bits")
    place = np.arange(codes.size) - np.repeat(starts, lengths)
    runs = np.add.reduceat(groups << (5 * place), starts)
    negative = (groups[ends] & 0x10) != 0
    runs[negative] -= np.left_shift(1, 5 * lengths[negative])
    runs[1::2] = np.cumsum(runs[1::2])
    runs[2::2] = np.cumsum(runs[2::2])
    return runs


def check_runs(runs: np.ndarray | Sequence[int], height: int, width: int) -> None:
    """Raise RleError unless the runs are non-negative 32-bit values covering height x width."""
    total = 0
    if len(runs):
        array = np.asarray(runs, dtype=np.int64)
        if array.min() < 0:
            raise RleError("counts holds a negative run length")
        if array.max() >= _UINT32_LIMIT:
            raise RleError("counts holds a run length of 2^32 or more")
        total = int(array.sum())
    if total != height * width:
        raise RleError(
            f"counts cover {total} pixels, expected height x width = {height * width}"
        )


def compress_runs(runs: np.ndarray | Sequence[int], height: int, width: int) -> bytes:
    """Compressed string of checked run lengths (pycocotools encodes them one for one)."""
    encoded = coco_mask.frPyObjects(
        {"counts": np.asarray(runs, dtype=np.uint32), "size": [height, width]}, height, width
    )
    return encoded["counts"]


def runs_as_list(counts: bytes) -> list[int]:
    """The uncompressed `counts` list of a stored compressed string."""
    return decode_string(counts).tolist()
