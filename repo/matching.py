"""Matching one image's annotations across sources: how alike two are, and which belong together.

Pure functions on COCO annotation objects, no database: `merge --strategy intersect` uses them
image by image (Datumaro likewise keeps its intersect matching apart from its merger).

- `similarities`: pairwise IoU of masks or polygons (pycocotools), else of boxes; OKS of
  keypoints; equality of captions; labels always match.
- `cluster`: each annotation joins the most similar cluster (at least `threshold`) that holds
  no annotation of its own source yet, else starts a new one; so a cluster holds at most one
  annotation per source.
- `closest_member`: the member most similar to the others, whose geometry a match keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

OKS_SIGMA = 0.1  # one sigma for every keypoint: the categories' own sigmas are not known


def similarities(objects: Sequence[dict[str, Any]], task: str, size: tuple[int, int]) -> np.ndarray:
    """Pairwise similarity of one image's annotations (`size` is its height and width)."""
    count = len(objects)
    if task == "captions":
        return np.array([[float(a.get("caption") == b.get("caption")) for b in objects] for a in objects])
    if task == "labels":
        return np.ones((count, count))
    if task == "person_keypoints" and all(o.get("keypoints") for o in objects):
        return np.array([[object_keypoint_similarity(a, b) for b in objects] for a in objects])
    height, width = size
    if all(o.get("segmentation") for o in objects):
        rles = [_rle(o["segmentation"], height, width) for o in objects]
        return np.asarray(coco_mask.iou(rles, rles, [0] * count))
    boxes = [o.get("bbox") or [0, 0, 0, 0] for o in objects]
    return np.asarray(coco_mask.iou(boxes, boxes, [0] * count))


def _rle(segmentation: Any, height: int, width: int) -> dict[str, Any]:
    if isinstance(segmentation, list):
        # pycocotools crashes on coordinates far outside the image; only what falls inside
        # counts for IoU, so clamping them to a margin around it changes no overlap that matters.
        parts = [np.clip(np.asarray(part, dtype=float), -1.0, float(max(height, width)) + 1.0).tolist()
                 for part in segmentation]
        return coco_mask.merge(coco_mask.frPyObjects(parts, height, width))
    if isinstance(segmentation["counts"], list):
        return coco_mask.frPyObjects(segmentation, height, width)
    return {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}


def object_keypoint_similarity(a: dict[str, Any], b: dict[str, Any], sigma: float = OKS_SIGMA) -> float:
    """COCO's OKS with one sigma for every keypoint, scaled by the first annotation's box."""
    first, second = np.asarray(a["keypoints"], float).reshape(-1, 3), np.asarray(b["keypoints"], float).reshape(-1, 3)
    if first.shape != second.shape:
        return 0.0
    visible = (first[:, 2] > 0) & (second[:, 2] > 0)
    if not visible.any():
        return 0.0
    box = a.get("bbox") or [0, 0, 1, 1]
    scale = max(box[2] * box[3], 1.0)
    distances = ((first[visible, :2] - second[visible, :2]) ** 2).sum(axis=1)
    return float(np.mean(np.exp(-distances / (2 * scale * (2 * sigma) ** 2))))


def cluster(similarity: np.ndarray, sources: Sequence[str], threshold: float) -> list[list[int]]:
    """Indices of the annotations grouped into matches, each group in input order."""
    clusters: list[list[int]] = []
    for index, source in enumerate(sources):
        best, best_score = None, threshold
        for number, members in enumerate(clusters):
            if any(sources[m] == source for m in members):
                continue
            score = max(similarity[index, m] for m in members)
            if score >= best_score:
                best, best_score = number, score
        if best is None:
            clusters.append([index])
        else:
            clusters[best].append(index)
    return clusters


def closest_member(candidates: Sequence[int], members: Sequence[int], similarity: np.ndarray) -> int:
    """Of `candidates`, the one whose summed similarity to all `members` is highest (the first
    of equals)."""
    return max(candidates, key=lambda m: sum(similarity[m, other] for other in members))
