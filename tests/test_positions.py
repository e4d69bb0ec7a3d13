"""Sparse positions (store.positions): records that kept their order keep their positions, and
a file is renumbered only when there is no room left. Checked with hypothesis against an
independent longest-increasing-subsequence count."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from repo.store.positions import fresh_positions, reuse_positions
from repo.store.schema import POSITION_STEP


def longest_increasing(values: list[int]) -> int:
    """Length of a longest strictly increasing subsequence, the quadratic textbook way."""
    best = [1] * len(values)
    for i in range(len(values)):
        for j in range(i):
            if values[j] < values[i]:
                best[i] = max(best[i], best[j] + 1)
    return max(best, default=0)


@st.composite
def old_positions(draw: st.DrawFn) -> list[int | None]:
    """Records in their new order, each with its old position (distinct) or None if new."""
    old = draw(st.lists(st.integers(0, 50 * POSITION_STEP), unique=True, max_size=40))
    old = draw(st.permutations(old)) if old else []
    new = draw(st.lists(st.integers(0, len(old)), max_size=10))
    merged: list[int | None] = list(old)
    for place in sorted(new, reverse=True):
        merged.insert(place, None)
    return merged


@given(old_positions())
def test_positions_keep_the_new_order_and_reuse_what_they_can(old):
    positions = reuse_positions(old)
    assert len(positions) == len(old)
    assert all(a < b for a, b in zip(positions, positions[1:])), "the new order must be kept"
    if positions == fresh_positions(len(old)):
        return  # no room somewhere: the file is renumbered
    kept = sum(p == o for p, o in zip(positions, old))
    assert kept >= longest_increasing([o for o in old if o is not None])


@given(st.integers(1, 60), st.data())
def test_inserting_into_a_fresh_file_changes_no_other_record(count, data):
    old = list(fresh_positions(count))
    at = data.draw(st.integers(0, count))
    with_new = old[:at] + [None] + old[at:]
    positions = reuse_positions(with_new)
    assert positions[:at] + positions[at + 1:] == old


@given(st.lists(st.integers(0, 10**9), unique=True, max_size=50))
def test_records_in_order_keep_their_positions(old):
    old.sort()
    assert reuse_positions(old) == old
