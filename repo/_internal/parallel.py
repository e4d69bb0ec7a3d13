"""Spreading CPU-bound work (decoding and encoding panoptic PNGs) over the machine's cores.

Workers are spawned, not forked: a forked child would inherit the parent's open database
connection in the middle of its transaction. Spawning costs a fraction of a second per
worker, so small jobs run in the calling process. DSREPO_WORKERS sets the number of workers
(1 turns parallelism off).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, TypeVar

from repo.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")

WORTH_IT = 200  # jobs below which spawning workers costs more than it saves


def worker_count() -> int:
    raw = os.environ.get("DSREPO_WORKERS")
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            raise ConfigError(f"DSREPO_WORKERS must be a whole number, got '{raw}'") from None
    return min(os.cpu_count() or 1, 8)


class Workers:
    """A pool used for one command; it starts only if the work is large enough."""

    def __init__(self, expected_jobs: int):
        count = worker_count()
        self._pool: ProcessPoolExecutor | None = None
        if count > 1 and expected_jobs >= WORTH_IT:
            self._pool = ProcessPoolExecutor(count, mp_context=get_context("spawn"))
            self._count = count

    def map(self, function: Callable[[T], R], jobs: Iterable[T]) -> Iterator[R]:
        if self._pool is None:
            return map(function, jobs)
        batch = list(jobs)
        chunk = max(1, len(batch) // (self._count * 4))
        return self._pool.map(function, batch, chunksize=chunk)

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
