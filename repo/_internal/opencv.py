"""OpenCV, loaded by the first call that needs it.

Importing cv2 costs about a tenth of a second and 25 MB, which `query`, `log`, or the import
and export of files without masks to trace or PNGs to decode should not pay. It is kept to
one thread per call: the callers spread their work over threads themselves.
"""

from __future__ import annotations

import functools
from types import ModuleType


@functools.cache
def opencv() -> ModuleType:
    import cv2

    cv2.setNumThreads(1)
    return cv2
