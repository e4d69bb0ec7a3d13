"""Intersect matching at scale: the sparse similarity of `repo.matching` holds exactly what
pycocotools' dense IoU matrix holds for the pairs a merge compares, and clustering over it
groups as the all-pairs clustering did."""

from __future__ import annotations

import random

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from repo.matching import cluster, closest_member, similarities

SIZE = (200, 300)  # height, width


def _boxes(rng: random.Random, count: int) -> list[dict]:
    """Boxes with fractional corners (IoU rounding shows), some touching, some of zero area."""
    boxes = []
    for number in range(count):
        x, y = rng.uniform(-5, 290), rng.uniform(-5, 190)
        w, h = (0.0, rng.uniform(1, 20)) if number % 17 == 0 else (rng.uniform(0.1, 30), rng.uniform(0.1, 30))
        boxes.append({"bbox": [x, y, w, h]})
    return boxes


def _polygons(rng: random.Random, count: int) -> list[dict]:
    """Triangles inside the image (matching clamps vertices far outside it before IoU)."""
    objects = []
    for _ in range(count):
        x, y, w, h = rng.uniform(0, 250), rng.uniform(0, 150), rng.uniform(2, 40), rng.uniform(2, 40)
        objects.append({"segmentation": [[x, y, x + w, y, x + w * 0.6, y + h]], "bbox": [x, y, w, h]})
    return objects


def _dense(objects: list[dict]) -> np.ndarray:
    """The oracle: pycocotools' IoU of every pair."""
    count = len(objects)
    if all(o.get("segmentation") for o in objects):
        height, width = SIZE
        rles = [coco_mask.merge(coco_mask.frPyObjects(o["segmentation"], height, width)) for o in objects]
        return np.asarray(coco_mask.iou(rles, rles, [0] * count))
    boxes = [o["bbox"] for o in objects]
    return np.asarray(coco_mask.iou(boxes, boxes, [0] * count))


def _all_pairs_cluster(matrix: np.ndarray, sources: list[str], threshold: float) -> list[list[int]]:
    """The clustering as it was before the sweep: every cluster scored for every annotation."""
    clusters: list[list[int]] = []
    for index, source in enumerate(sources):
        best, best_score = None, threshold
        for number, members in enumerate(clusters):
            if any(sources[m] == source for m in members):
                continue
            score = max(matrix[index, m] for m in members)
            if score >= best_score:
                best, best_score = number, score
        if best is None:
            clusters.append([index])
        else:
            clusters[best].append(index)
    return clusters


@pytest.mark.parametrize("make", [_boxes, _polygons])
@pytest.mark.parametrize("seed", range(4))
def test_sparse_similarity_equals_pycocotools_where_it_matters(make, seed):
    rng = random.Random(seed)
    objects = make(rng, 240)
    sources = [rng.choice("abc") for _ in objects]
    matrix = _dense(objects)
    similarity = similarities(objects, "instances", SIZE, sources)
    for i in range(len(objects)):
        assert similarity[i, i] == matrix[i, i]
        for j in range(len(objects)):
            if sources[i] != sources[j]:
                assert similarity[i, j] == matrix[i, j], (i, j)
        expected = {j for j in range(len(objects)) if sources[j] != sources[i] and matrix[i, j] > 0}
        assert {j for j, _ in similarity.neighbours(i)} == expected


@pytest.mark.parametrize("threshold", [0.0, 0.05, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("make", [_boxes, _polygons])
def test_clusters_and_kept_members_are_those_of_all_pairs(make, threshold):
    rng = random.Random(7)
    objects = make(rng, 300)
    sources = [rng.choice("abcd") for _ in objects]
    matrix = _dense(objects)
    similarity = similarities(objects, "instances", SIZE, sources)
    found = cluster(similarity, sources, threshold)
    assert found == _all_pairs_cluster(matrix, sources, threshold)
    for members in found:
        expected = max(members, key=lambda m: sum(matrix[m, other] for other in members))
        assert closest_member(members, members, similarity) == expected


def test_many_disjoint_boxes_compare_only_their_neighbours():
    """20k boxes per source on a grid, each overlapping its one counterpart: one match each."""
    side, count = 200, 20_000
    objects, sources = [], []
    for source, shift in (("a", 0.0), ("b", 1.0)):
        for n in range(count):
            objects.append({"bbox": [(n % side) * 20 + shift, (n // side) * 20 + shift, 10.0, 10.0]})
            sources.append(source)
    similarity = similarities(objects, "instances", (4000, 4000), sources)
    found = cluster(similarity, sources, 0.5)
    assert len(found) == count and all(len(members) == 2 for members in found)
    assert similarity[0, count] == pytest.approx(81 / 119)
