"""Matching one image's annotations across sources: how alike two are, and which belong together.

Pure functions on COCO annotation objects, no database: `merge --strategy intersect` uses them
image by image (Datumaro likewise keeps its intersect matching apart from its merger).

- `similarities`: pairwise IoU of masks or polygons (pycocotools), else of boxes; OKS of
  keypoints; equality of captions; labels always match. Masks and boxes are compared only
  where their boxes overlap (a sweep finds those pairs), so an image with 20k annotations per
  source costs time and memory in proportion to its overlapping pairs.
- `cluster`: each annotation joins the most similar cluster (at least `threshold`) that holds
  no annotation of its own source yet, else starts a new one; so a cluster holds at most one
  annotation per source.
- `closest_member`: the member most similar to the others, whose geometry a match keeps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

OKS_SIGMA = 0.1  # one sigma for every keypoint: the categories' own sigmas are not known


PAIR_BLOCK = 1 << 20  # candidate pairs held at once while their similarity is computed


class Similarity:
    """How alike each two of one image's annotations are (`similarity[i, j]`).

    Boxes and masks keep only the pairs that overlap at all, found by a sweep over the boxes
    (see `similarities`); every other pair is 0. Tasks without geometry (captions, labels,
    keypoints) keep the whole matrix: their annotations per image are few."""

    def __init__(self, size: int, matrix: np.ndarray | None = None):
        self.size = size
        self._matrix = matrix
        self._pairs: dict[int, dict[int, float]] = {}  # i -> {j: value}, both ways, value > 0
        self._diagonal: np.ndarray = np.zeros(size) if matrix is None else np.diagonal(matrix)

    def __getitem__(self, key: tuple[int, int]) -> float:
        first, second = key
        if self._matrix is not None:
            return float(self._matrix[first, second])
        if first == second:
            return float(self._diagonal[first])
        return self._pairs.get(first, {}).get(second, 0.0)

    def neighbours(self, index: int) -> list[tuple[int, float]]:
        """The other annotations whose similarity to `index` is above 0, with it."""
        if self._matrix is not None:
            row = self._matrix[index]
            return [(int(j), float(row[j])) for j in np.flatnonzero(row > 0) if j != index]
        return list(self._pairs.get(index, {}).items())

    def _add(self, first: np.ndarray, second: np.ndarray, values: np.ndarray) -> None:
        for i, j, value in zip(first.tolist(), second.tolist(), values.tolist()):
            if value > 0:
                self._pairs.setdefault(i, {})[j] = value
                self._pairs.setdefault(j, {})[i] = value


def similarities(
    objects: Sequence[dict[str, Any]], task: str, size: tuple[int, int], sources: Sequence[str] | None = None
) -> Similarity:
    """Pairwise similarity of one image's annotations (`size` is its height and width).

    With `sources` (each annotation's), pairs within one source are not compared (they count
    as 0): a match holds at most one annotation per source. For masks and boxes only pairs
    whose boxes overlap are compared, so time and memory follow the overlapping pairs, not
    the square of the annotations."""
    count = len(objects)
    if task == "captions":
        return Similarity(count, np.array([[float(a.get("caption") == b.get("caption")) for b in objects] for a in objects]))
    if task == "labels":
        return Similarity(count, np.ones((count, count)))
    if task == "person_keypoints" and all(o.get("keypoints") for o in objects):
        return Similarity(count, np.array([[object_keypoint_similarity(a, b) for b in objects] for a in objects]))
    similarity = Similarity(count)
    groups = np.unique(np.asarray(sources if sources is not None else range(count), dtype=object), return_inverse=True)[1]
    height, width = size
    if count and all(o.get("segmentation") for o in objects):
        rles = [_rle(o["segmentation"], height, width) for o in objects]
        extents = np.asarray(coco_mask.toBbox(rles), dtype=float).reshape(-1, 4)
        similarity._diagonal = np.array([float(coco_mask.iou([r], [r], [0])[0][0]) for r in rles])
        for first, second in _overlapping(extents, groups):
            for i in np.unique(first):
                js = second[first == i]
                values = np.asarray(coco_mask.iou([rles[i]], [rles[j] for j in js], [0] * len(js)), dtype=float)
                similarity._add(np.full(len(js), i), js, values.reshape(-1))
        return similarity
    boxes = np.array([o.get("bbox") or [0, 0, 0, 0] for o in objects], dtype=float).reshape(-1, 4)
    similarity._diagonal = _box_iou(boxes, boxes)
    for first, second in _overlapping(boxes, groups):
        similarity._add(first, second, _box_iou(boxes[first], boxes[second]))
    return similarity


def _box_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """IoU of boxes [x, y, w, h] two by two, computed as pycocotools' bbIou does (same
    operations, same order: the same doubles)."""
    first_area = first[:, 2] * first[:, 3]
    second_area = second[:, 2] * second[:, 3]
    w = np.minimum(second[:, 0] + second[:, 2], first[:, 0] + first[:, 2]) - np.maximum(second[:, 0], first[:, 0])
    h = np.minimum(second[:, 1] + second[:, 3], first[:, 1] + first[:, 3]) - np.maximum(second[:, 1], first[:, 1])
    inter = w * h
    union = second_area + first_area - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((w > 0) & (h > 0), inter / np.where(union == 0, 1, union), 0.0)


def _overlapping(boxes: np.ndarray, groups: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pairs (i, j) of boxes [x, y, w, h] of different groups whose extents touch or overlap,
    in blocks of at most about PAIR_BLOCK pairs: a sweep along the axis on which fewer pairs
    overlap, then the other axis as a filter."""
    count = len(boxes)
    if count < 2:
        return
    low, high = boxes[:, :2], boxes[:, :2] + np.maximum(boxes[:, 2:], 0)
    best = None
    for axis in (0, 1):
        order = np.argsort(low[:, axis], kind="stable")
        ends = np.searchsorted(low[order, axis], high[order, axis], side="right")
        counts = np.maximum(ends - np.arange(count) - 1, 0)
        if best is None or counts.sum() < best[2].sum():
            best = (axis, order, counts)
    assert best is not None
    axis, order, counts = best
    other = 1 - axis
    before = np.concatenate(([0], np.cumsum(counts)))
    start = 0
    while start < count:
        stop = max(int(np.searchsorted(before, before[start] + PAIR_BLOCK, side="right")) - 1, start + 1)
        stop = min(stop, count)
        repeat = counts[start:stop]
        left = np.repeat(np.arange(start, stop), repeat)
        offsets = np.arange(len(left)) - np.repeat(before[start:stop] - before[start], repeat)
        first, second = order[left], order[left + 1 + offsets]
        keep = (
            (groups[first] != groups[second])
            & (low[second, other] <= high[first, other]) & (low[first, other] <= high[second, other])
        )
        if keep.any():
            yield first[keep], second[keep]
        start = stop


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


def cluster(similarity: Similarity, sources: Sequence[str], threshold: float) -> list[list[int]]:
    """Indices of the annotations grouped into matches, each group in input order.

    Only a cluster holding an annotation at least `threshold` alike can be joined, so with a
    threshold above 0 only the clusters of an annotation's neighbours are scored."""
    clusters: list[list[int]] = []
    cluster_of: list[int] = []
    for index, source in enumerate(sources):
        if threshold > 0:
            numbers: Sequence[int] = sorted(
                {cluster_of[j] for j, value in similarity.neighbours(index) if j < index and value >= threshold}
            )
        else:
            numbers = range(len(clusters))
        best, best_score = None, threshold
        for number in numbers:
            members = clusters[number]
            if any(sources[m] == source for m in members):
                continue
            score = max(similarity[index, m] for m in members)
            if score >= best_score:
                best, best_score = number, score
        if best is None:
            cluster_of.append(len(clusters))
            clusters.append([index])
        else:
            cluster_of.append(best)
            clusters[best].append(index)
    return clusters


def closest_member(candidates: Sequence[int], members: Sequence[int], similarity: Similarity) -> int:
    """Of `candidates`, the one whose summed similarity to all `members` is highest (the first
    of equals)."""
    return max(candidates, key=lambda m: sum(similarity[m, other] for other in members))
