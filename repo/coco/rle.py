"""COCO run-length encoded masks, checked before pycocotools ever sees them.

A mask is stored as COCO's compressed RLE string (the `counts` of `pycocotools.mask.encode`).
pycocotools does not bounds-check its input and can crash the process on a bad RLE, so every
RLE is decoded and checked here first, with numpy. The compressed form, and the two limits of
pycocotools that `decode_string` and `check_compressible` guard against, are described in
docs/edge-cases.md ("RLE masks").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as coco_mask

_MAX_GROUPS = 7  # the most pycocotools writes (32 bits and a sign) and reads correctly
_ROOM = 6  # characters pycocotools' encoder allots per run, its closing NUL included
_UINT32_LIMIT = 1 << 32


class RleError(ValueError):
    """The RLE is malformed; the message says how, for the caller to place in an InputError."""


def decode_string(counts: bytes) -> np.ndarray:
    """Run lengths of a compressed RLE string, exactly as pycocotools would read them."""
    runs, _ = _stored_runs(counts, np.array([len(counts)]))
    # From the fourth run on, each is stored as its difference to the run two places before.
    runs[1::2] = np.cumsum(runs[1::2])
    runs[2::2] = np.cumsum(runs[2::2])
    return runs


def decode_strings(strings: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Run lengths of several compressed RLE strings read together, and where each string's
    runs start (their number at the end): string i holds runs[offsets[i]:offsets[i + 1]].

    An image's segments are read by one set of numpy calls, not one set each (the calls'
    overhead, 30 us per segment, was most of painting a panoptic PNG). The two chains of
    differences restart with each string: a chain's running sum minus its value at the
    string's first run, where neither chain has a value.
    """
    string_ends = np.cumsum(np.fromiter(map(len, strings), dtype=np.int64, count=len(strings)))
    runs, value_ends = _stored_runs(b"".join(strings), string_ends)
    offsets = np.concatenate(([0], np.searchsorted(value_ends, string_ends)))
    first = np.repeat(offsets[:-1], np.diff(offsets))  # each run's string's first run
    place = np.arange(runs.size) - first
    odd = (place & 1).astype(bool)
    odd_sums = np.cumsum(np.where(odd, runs, 0))
    even_sums = np.cumsum(np.where(odd | (place == 0), 0, runs))
    runs = np.where(odd, odd_sums - odd_sums[first], np.where(place > 0, even_sums - even_sums[first], runs))
    return runs, offsets


def _stored_runs(counts: bytes, string_ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values a compressed string stores (runs, or differences of runs), and the index of
    each one's last character; `string_ends` are where the joined strings end, none of which
    may end in the middle of a value."""
    codes = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if codes.size == 0:
        return codes, codes
    if codes.min() < 0 or codes.max() > 63:
        raise RleError("counts string holds a character outside the RLE alphabet")
    more = (codes & 0x20) != 0
    if more[string_ends[string_ends > 0] - 1].any():
        raise RleError("counts string ends in the middle of a run length")
    groups = codes & 0x1F
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > _MAX_GROUPS:
        raise RleError(
            f"counts string writes a run length in more than {_MAX_GROUPS} characters, "
            "which pycocotools misreads"
        )
    negative = (groups[ends] & 0x10) != 0
    if (negative & (lengths == _MAX_GROUPS)).any():
        raise RleError(
            f"counts string writes a negative run difference in {_MAX_GROUPS} characters, "
            "which pycocotools misreads"
        )
    place = np.arange(codes.size) - np.repeat(starts, lengths)
    values = np.add.reduceat(groups << (5 * place), starts)
    values -= np.left_shift(negative.astype(np.int64), 5 * lengths)  # the sign extends past the groups
    return values, ends


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


def _characters(runs: np.ndarray) -> np.ndarray:
    """How many characters pycocotools' encoder writes for each run: 5 bits and a sign of the
    run itself (the first three) or of its difference to the run two places before."""
    coded = np.concatenate((runs[:3], runs[3:] - runs[1:-2]))
    characters = np.ones(coded.shape, dtype=np.int64)
    for groups in range(1, _MAX_GROUPS):
        limit = 1 << (5 * groups - 1)
        characters += (coded >= limit) | (coded < -limit)
    return characters


def check_compressible(runs: np.ndarray | Sequence[int]) -> None:
    """Raise RleError unless pycocotools' encoder can compress these (checked) runs within the
    buffer it allots, and read the result back (see docs/edge-cases.md)."""
    characters = _characters(np.asarray(runs, dtype=np.int64))
    if characters.size and characters.max() > _ROOM:
        raise RleError(
            "counts holds a run of 2^29 pixels or more, or one differing that much from the run "
            "two places before; pycocotools cannot compress such a mask safely"
        )
    if characters.sum() + 1 > _ROOM * characters.size:
        raise RleError(
            "every run of counts is 2^24 pixels or more, or differs that much from the run two "
            "places before; pycocotools cannot compress such a mask safely"
        )


def compress_runs(runs: np.ndarray | Sequence[int], height: int, width: int) -> bytes:
    """Compressed string of checked run lengths (pycocotools encodes them one for one), for
    runs its encoder can take."""
    check_compressible(runs)
    encoded = coco_mask.frPyObjects(
        {"counts": np.asarray(runs, dtype=np.uint32), "size": [height, width]}, height, width
    )
    return encoded["counts"]


def runs_as_list(counts: bytes) -> list[int]:
    """The uncompressed `counts` list of a stored compressed string."""
    return decode_string(counts).tolist()
