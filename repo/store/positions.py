"""Sparse positions: the order of records in a file, kept stable across updates.

Records sit at multiples of POSITION_STEP. When a file is read again, the records that kept
their relative order keep their positions (the longest run of them that is still in order),
and new or moved records take free positions between their neighbours. So inserting one
annotation in the middle of a file changes one row, not every row after it. Only when two
neighbours have no room left between them is the whole file renumbered.
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections.abc import Sequence

from repo.store.schema import POSITION_STEP


def fresh_position(index: int) -> int:
    """The position of the record at `index` of a freshly numbered file."""
    return index * POSITION_STEP


def fresh_positions(count: int) -> list[int]:
    return [fresh_position(index) for index in range(count)]


def _increasing_run(values: Sequence[int | None]) -> set[int]:
    """Indices of a longest strictly increasing subsequence of the non-None values."""
    tails: list[int] = []  # smallest tail value of an increasing run of each length
    tail_index: list[int] = []
    previous: list[int] = [-1] * len(values)
    for index, value in enumerate(values):
        if value is None:
            continue
        length = bisect_left(tails, value)
        if length == len(tails):
            tails.append(value)
            tail_index.append(index)
        else:
            tails[length] = value
            tail_index[length] = index
        previous[index] = tail_index[length - 1] if length else -1
    kept: set[int] = set()
    index = tail_index[-1] if tail_index else -1
    while index >= 0:
        kept.add(index)
        index = previous[index]
    return kept


def reuse_positions(old_positions: Sequence[int | None]) -> list[int]:
    """New positions for records in their new order, given each one's old position (or None)."""
    count = len(old_positions)
    if None not in old_positions and all(map(operator.lt, old_positions, old_positions[1:])):
        return list(old_positions)  # the common case of an update: every record kept its place
    kept = _increasing_run(old_positions)
    positions: list[int | None] = [old_positions[i] if i in kept else None for i in range(count)]
    index = 0
    while index < count:
        if positions[index] is not None:
            index += 1
            continue
        end = index
        while end < count and positions[end] is None:
            end += 1
        gap = end - index
        low = positions[index - 1] if index > 0 else None
        high = positions[end] if end < count else None
        if low is None and high is None:
            return fresh_positions(count)
        if high is None:
            filled = [low + (k + 1) * POSITION_STEP for k in range(gap)]  # type: ignore[operator]
        elif low is None:
            filled = [high - (gap - k) * POSITION_STEP for k in range(gap)]
        elif high - low > gap:
            step = (high - low) // (gap + 1)
            filled = [low + (k + 1) * step for k in range(gap)]
        else:
            return fresh_positions(count)
        positions[index:end] = filled
        index = end
    return positions  # type: ignore[return-value]
