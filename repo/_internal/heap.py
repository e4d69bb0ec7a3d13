"""Freed memory kept by the C allocator while PNGs are decoded or painted one after another.

Each PNG allocates a few megabytes (id map, scanlines, OpenCV's buffers) and frees them. glibc
hands blocks that big out as fresh mmap()ed pages, or returns them to the kernel when they sit
at the top of the heap, so every image paid for its pages again: a forced regeneration of
2,000 PNGs took 1.1 million page faults and more system time than painting took user time.
Serving blocks up to 32 MiB from the heap, and trimming it only beyond 64 MiB free, lets each
PNG reuse the pages of the one before. The worker threads share the main heap, whose freed
memory (an import's earlier files) they then reuse: a heap of their own per thread took ~7 MB
more at the peak of a 2,000-image import with two threads, and sharing costs no measurable CPU.
Only glibc has these knobs; elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import functools

# mallopt() parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 32 << 20  # glibc's own upper bound for this knob on 64-bit systems
TRIM_THRESHOLD = 64 << 20


@functools.cache
def keep_freed_memory() -> None:
    """Set once per process, before the worker threads start; a block above 32 MiB (a map of
    over 8 megapixels) is still mmap()ed."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows)
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    mallopt(M_ARENA_MAX, 1)
