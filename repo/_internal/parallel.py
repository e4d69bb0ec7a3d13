"""Spreading CPU-bound work (decoding and encoding panoptic PNGs) over the machine's cores.

The work runs in threads: the heavy parts (OpenCV's PNG decoder, zlib, numpy on whole
images) release the GIL, so threads use every core without the cost of processes (spawning
one took a fraction of a second and ~90 MB, and every job and result had to be pickled).
DSREPO_WORKERS sets the number of threads (1 runs everything in the calling thread).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from repo.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")

WORTH_IT = 2  # jobs below which a pool is not worth starting


def worker_count() -> int:
    raw = os.environ.get("DSREPO_WORKERS")
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            raise ConfigError(f"DSREPO_WORKERS must be a whole number, got '{raw}'") from None
    return min(os.cpu_count() or 1, 8)


class Workers:
    """A thread pool used for one command; it starts only if there is more than one job."""

    def __init__(self, expected_jobs: int):
        count = worker_count()
        self._pool: ThreadPoolExecutor | None = None
        if count > 1 and expected_jobs >= WORTH_IT:
            self._pool = ThreadPoolExecutor(count, thread_name_prefix="dsrepo")

    def map(self, function: Callable[[T], R], jobs: Iterable[T]) -> Iterator[R]:
        """Results in the order of the jobs."""
        if self._pool is None:
            return map(function, jobs)
        return self._pool.map(function, jobs)

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
