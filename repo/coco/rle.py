"""COCO run-length encoded masks, checked before pycocotools ever sees them.

A mask is stored as COCO's compressed RLE string (the `counts` of `pycocotools.mask.encode`).
pycocotools does not bounds-check its input and can crash the process on a bad RLE, so every
RLE is decoded and checked here first, with numpy: the string alphabet, non-negative runs that
fit in 32 bits, and a total equal to height x width.

Compressed form: each run length is written in 5-bit groups (low group first) as characters
offset by 48, bit 0x20 meaning "more groups follow" and bit 0x10 of the last group the sign;
from the fourth run on, the value stored is the difference to the run two places before.

pycocotools reads the groups with 32-bit `int` shifts (`(c & 0x1f) << 5*k`, `-1 << 5*k`):
an 8th group, or the sign of a 7th, shifts by 35 bits, which C leaves undefined (x86 shifts by
3 instead). Its own encoder writes at most 7 groups, but 7 with the sign for a run more than
2^29 shorter than the one two places before, which it then misreads itself. Such strings are
refused here, and so are the runs that would compress to one (only masks of over 2^29 pixels
can have them): what dsrepo accepts, pycocotools reads as dsrepo does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as coco_mask

_MAX_GROUPS = 7  # the most pycocotools writes (32 bits and a sign) and reads correctly
_MIN_DIFFERENCE = -(1 << 29)  # the shortest difference pycocotools writes in 6 groups
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
        raise RleError(
            f"counts string writes a run length in more than {_MAX_GROUPS} characters, which pycocotools misreads"
        )
    negative = (groups[ends] & 0x10) != 0
    if (negative & (lengths == _MAX_GROUPS)).any():
        raise RleError(
            f"counts string writes a negative run difference in {_MAX_GROUPS} characters, which pycocotools misreads"
        )
    place = np.arange(codes.size) - np.repeat(starts, lengths)
    runs = np.add.reduceat(groups << (5 * place), starts)
    runs[negative] -= np.left_shift(1, 5 * lengths[negative])
    runs[1::2] = np.cumsum(runs[1::2])
    runs[2::2] = np.cumsum(runs[2::2])
    return runs


def check_runs(runs: np.ndarray | Sequence[int], height: int, width: int) -> None:
    """Raise RleError unless the runs are non-negative 32-bit values covering height x width."""
    total = 0
    if len(runs):
        try:
            array = np.asarray(runs, dtype=np.int64)
        except OverflowError:  # a Python integer beyond 64 bits
            raise RleError("counts holds a run length beyond 64 bits") from None
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
    """Compressed string of checked run lengths (pycocotools encodes them one for one).

    Refuses the runs whose string pycocotools would misread (see the module docstring): the
    stored string is what dsrepo and pycocotools read the mask from later."""
    array = np.asarray(runs, dtype=np.int64)
    if array.size > 3 and (array[3:] - array[1:-2]).min() < _MIN_DIFFERENCE:
        raise RleError(
            "counts holds a run more than 2^29 shorter than the run two places before; "
            "pycocotools misreads its compressed form of such a mask"
        )
    encoded = coco_mask.frPyObjects(
        {"counts": array.astype(np.uint32), "size": [height, width]}, height, width
    )
    return encoded["counts"]


def runs_as_list(counts: bytes) -> list[int]:
    """The uncompressed `counts` list of a stored compressed string."""
    return decode_string(counts).tolist()
