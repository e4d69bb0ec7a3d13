"""Painting PNG after PNG must reuse the heap's pages, not fault them in again for each image
(repo._internal.heap): measured as minor page faults in a fresh interpreter."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

PAINT_LOOP = """
import json, resource
import numpy as np
from pycocotools import mask as coco_mask
from repo._internal.heap import keep_freed_memory
from repo.coco.panoptic import encode_png, paint_id_map

if KEEP:
    keep_freed_memory()
id_map = np.zeros((480, 640), dtype=np.uint32)
id_map[100:300, 50:400], id_map[350:, 200:] = 7, 70000
segments = [(i, coco_mask.encode(np.asfortranarray(id_map == i, dtype=np.uint8))["counts"]) for i in (7, 70000)]
encode_png(paint_id_map(segments, 480, 640))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    encode_png(paint_id_map(segments, 480, 640))
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 40))
"""


def faults_per_png(keep: bool) -> float:
    run = subprocess.run([sys.executable, "-c", f"KEEP = {keep}\n" + PAINT_LOOP], capture_output=True, check=True)
    return json.loads(run.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the knobs are glibc's")
def test_painting_reuses_pages_instead_of_faulting_them_in():
    # A 640x480 map is 1.2 MB: its pages alone are 300 faults an image when freshly mapped.
    assert faults_per_png(keep=True) < 30
    assert faults_per_png(keep=False) > 300  # the default the knobs exist for
