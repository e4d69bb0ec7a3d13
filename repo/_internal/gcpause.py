"""The cyclic garbage collector paused while a command moves bulk data.

Reading a big annotation file creates millions of dicts and lists; each full collection walks
all of them although COCO records hold no reference cycles (orjson.loads of a 576 MB file:
15.3 s of CPU with the collector, 3.2 s without). Reference counting still frees everything,
so pausing the collector for one transaction costs no memory that outlives it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Nested uses are free: only the outermost turns the collector back on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
