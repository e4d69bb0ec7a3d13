"""Masks as pixels: polygons rasterised as pycocotools does, RLE decoded, encoded and traced.

What a COCO polygon covers is what pycocotools draws: every COCO tool rasterises with it.
But pycocotools does not check its input (see repo.coco.rle): its string encoder overflows
on the long runs of images of 2^24 pixels and more, and a coordinate far outside the image
makes it allocate without bound. So coordinates more than CLAMP_IMAGES image sizes outside
the image are clamped, and on huge images polygons are drawn by a numpy port of
pycocotools' `rleFrPoly`, which does the same float operations in the same order (the tests
hold it to pycocotools' pixels). Full-image RLE is decoded and encoded here with numpy,
through the checks of repo.coco.rle.

Tracing a mask into polygons follows the pixel edges (the "crack" boundary), not the pixel
centres: OpenCV traces the mask upsampled 2x, and each traced point maps back to a pixel
corner. pycocotools samples a pixel near its centre, so such a polygon draws back exactly
the pixels it was traced from. COCO polygons have no holes (pycocotools unions the parts of
an annotation), so each hole is joined to its outline by a zero-width seam: pycocotools fills
by crossing parity, and the seam's two coincident edges cancel out.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pycocotools import mask as coco_mask

from repo.coco.rle import compress_runs, decode_string

# pycocotools' encoder is safe for masks below 2^24 pixels (see repo.coco.rle); larger
# images are drawn in numpy.
SAFE_PIXELS = 1 << 24
# Polygon coordinates are clamped to this many image sizes around the image: pycocotools
# allocates memory in proportion to a polygon's length and overflows on huge coordinates.
CLAMP_IMAGES = 4


class MaskError(ValueError):
    """A shape dsrepo cannot turn into pixels safely; the message says why."""


def decode(counts: bytes, height: int, width: int) -> np.ndarray:
    """The pixels (bool, height x width) of a checked compressed RLE."""
    runs = decode_string(counts)
    values = np.zeros(runs.size, dtype=bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape(width, height).T


def runs_of(mask: np.ndarray) -> np.ndarray:
    """COCO's run lengths of a mask: column-major, starting with a run of zeros."""
    flat = mask.T.ravel()
    edges = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]))
    runs = np.diff(edges)
    return np.concatenate(([0], runs)) if flat[0] else runs


def encode(mask: np.ndarray) -> bytes:
    """The compressed RLE string of a mask (what `pycocotools.mask.encode` gives)."""
    height, width = mask.shape
    return compress_runs(runs_of(mask), height, width)


def area_and_bbox(counts: bytes, height: int, width: int) -> tuple[int, list[int]]:
    """Pixel count and [x, y, width, height] box of a checked RLE, as pycocotools computes them."""
    rle = {"counts": counts, "size": [height, width]}
    box = coco_mask.toBbox(rle)
    return int(coco_mask.area(rle)), [int(value) for value in box]


def rasterise(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """The pixels pycocotools draws for an annotation's polygon parts (their union)."""
    if not polygons:
        return np.zeros((height, width), dtype=bool)
    margin = CLAMP_IMAGES * float(max(height, width))
    parts = [np.clip(np.asarray(part, dtype=float).reshape(-1, 2), -margin, margin) for part in polygons]
    if height * width < SAFE_PIXELS:
        drawn = coco_mask.merge(coco_mask.frPyObjects([part.ravel().tolist() for part in parts], height, width))
        return coco_mask.decode(drawn).astype(bool)
    return _rasterise_in_numpy(parts, height, width)


def _rasterise_in_numpy(parts: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """pycocotools' drawing (`rleFrPoly`, then the union of the parts), step for step in
    numpy, for images too large for its encoder: the same float operations in the same
    order give the same pixels, and no string is encoded."""
    if height * width >= 1 << 31:
        raise MaskError(f"a {width}x{height} image is too large to draw polygons on (2^31 pixels or more)")
    mask = np.zeros(height * width, dtype=bool)
    for part in parts:
        runs = _polygon_runs(part, height, width)
        values = np.zeros(runs.size, dtype=bool)
        values[1::2] = True
        mask |= np.repeat(values, runs)
    return mask.reshape(width, height).T


def _polygon_runs(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """The run lengths pycocotools' `rleFrPoly` computes for one polygon part."""
    scale = 5.0
    # Upsample the vertices; C's (int) truncates toward zero.
    x = np.trunc(scale * points[:, 0] + 0.5).astype(np.int64)
    y = np.trunc(scale * points[:, 1] + 0.5).astype(np.int64)
    x, y = np.append(x, x[0]), np.append(y, y[0])
    xs, xe, ys, ye = x[:-1], x[1:], y[:-1], y[1:]
    dx, dy = np.abs(xe - xs), np.abs(ys - ye)
    along_x = dx >= dy
    flip = (along_x & (xs > xe)) | (~along_x & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    span = np.where(along_x, dx, dy)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(along_x, (ye - ys) / dx, (xe - xs) / dy)
    slope[span == 0] = 0.0  # a repeated vertex: C's NaN point never counts, its u repeats
    # Every point of every edge, endpoints included: t runs over 0..span (reversed if flipped).
    edge = np.repeat(np.arange(span.size), span + 1)
    starts = np.concatenate(([0], np.cumsum(span + 1)[:-1]))
    step = np.arange(edge.size) - starts[edge]
    t = np.where(flip[edge], span[edge] - step, step)
    drawn = np.trunc(np.where(along_x[edge], ys[edge], xs[edge]) + slope[edge] * t + 0.5).astype(np.int64)
    u = np.where(along_x[edge], t + xs[edge], drawn)
    v = np.where(along_x[edge], drawn, t + ys[edge])
    # Where u changes, a column boundary is crossed: keep those on a pixel's sampling column.
    change = u[1:] != u[:-1]
    xd = (np.where(u[1:] < u[:-1], u[1:], u[1:] - 1).astype(float) + 0.5) / scale - 0.5
    keep = change & (np.floor(xd) == xd) & (xd >= 0) & (xd <= width - 1)
    yd = (np.minimum(v[1:], v[:-1]).astype(float) + 0.5) / scale - 0.5
    yd = np.ceil(np.clip(yd, 0, height))
    crossings = np.sort(np.append(xd[keep].astype(np.int64) * height + yd[keep].astype(np.int64), height * width))
    gaps = np.diff(crossings, prepend=0)
    # A zero gap (two crossings at one pixel) cancels: the gap after it joins the run before.
    runs = [int(gaps[0])]
    index = 1
    while index < gaps.size:
        if gaps[index] > 0:
            runs.append(int(gaps[index]))
            index += 1
        else:
            index += 1
            if index < gaps.size:
                runs[-1] += int(gaps[index])
                index += 1
    return np.asarray(runs, dtype=np.int64)


def trace(mask: np.ndarray, tolerance: float = 0.0) -> list[list[float]]:
    """COCO polygon parts covering exactly the mask's pixels, one per 8-connected region.

    `tolerance` > 0 simplifies each outline (Douglas-Peucker, in pixels): fewer points, and
    pixels that may differ from the mask's. Outlines and holes left with less than one pixel
    of area are dropped.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(mask.any(axis=0))
    top, left = int(rows[0]), int(cols[0])
    crop = mask[top:rows[-1] + 1, left:cols[-1] + 1].astype(np.uint8)
    upsampled = np.repeat(np.repeat(crop, 2, axis=0), 2, axis=1)
    contours, hierarchy = cv2.findContours(upsampled, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    links = hierarchy[0]  # per contour: next, previous, first child, parent
    offset = np.array([left, top])
    parts = []
    for index, contour in enumerate(contours):
        if links[index][3] != -1:
            continue  # a hole: joined to its outline below
        outline = _ring(contour, offset, tolerance)
        if outline is None:
            continue
        holes = []
        child = links[index][2]
        while child != -1:
            hole = _ring(contours[child], offset, tolerance)
            if hole is not None:
                holes.append(hole)
            child = links[child][0]
        parts.append(_seamed(outline, holes).astype(float).ravel().tolist())
    return parts


def _ring(contour: np.ndarray, offset: np.ndarray, tolerance: float) -> np.ndarray | None:
    """A traced contour as pixel-corner points of the original mask, or None below one pixel.

    A point of the 2x upsampled image at c lies on the left (top) half of pixel c // 2 when c
    is even, on its right (bottom) half when odd: as a pixel corner that is (c + 1) // 2.
    """
    points = (contour[:, 0, :] + 1) // 2
    if tolerance > 0:
        points = cv2.approxPolyDP(points.reshape(-1, 1, 2).astype(np.int32), tolerance, True)[:, 0, :]
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = (points[1:] != points[:-1]).any(axis=1)
    points = points[keep]
    if len(points) > 1 and (points[0] == points[-1]).all():
        points = points[:-1]
    if len(points) < 3 or abs(cv2.contourArea(points.reshape(-1, 1, 2).astype(np.int32))) < 1:
        return None
    return points + offset


def _seamed(outline: np.ndarray, holes: list[np.ndarray]) -> np.ndarray:
    """One ring drawing the outline with its holes: each hole is entered from the ring point
    nearest to the hole's first point, and left the same way, along a zero-width seam."""
    ring = outline
    for hole in holes:
        at = int(np.argmin(((ring - hole[0]) ** 2).sum(axis=1)))
        ring = np.concatenate((ring[:at + 1], hole, hole[:1], ring[at:]))
    return ring


def iou(first: np.ndarray, second: np.ndarray) -> float:
    """Intersection over union of two masks; two empty masks are equal (1.0)."""
    union = np.count_nonzero(first | second)
    return np.count_nonzero(first & second) / union if union else 1.0
