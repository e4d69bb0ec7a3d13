"""Seeded, deterministic synthetic COCO dataset generator.

Benchmarks need val2017-sized data without downloading COCO, and round-trip tests need small
files that hit every corner of the format (ids above 2^31, odd floats, unknown keys, unicode
file names, both RLE flavours, panoptic PNGs). The same arguments always give byte-identical
files: every random draw comes from ``numpy.random.default_rng`` streams keyed by
(seed, task, image index), and nothing reads the clock.

Usage: ``python scripts/gen_coco.py OUT [--images N] [--seed S] [--tasks instances,panoptic]
[--subset val2017] [--edge-cases] [--write-images]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import zlib
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from PIL import Image
from pycocotools import mask as mask_utils

ALL_TASKS = ("instances", "person_keypoints", "captions", "labels", "image_info", "panoptic", "stuff")

# Real COCO ids (1..90 with gaps) so that code assuming contiguous category ids breaks here too.
_THINGS_BY_SUPER = {
    "person": "1 person",
    "vehicle": "2 bicycle|3 car|4 motorcycle|5 airplane|6 bus|7 train|8 truck|9 boat",
    "outdoor": "10 traffic light|11 fire hydrant|13 stop sign|14 parking meter|15 bench",
    "animal": "16 bird|17 cat|18 dog|19 horse|20 sheep|21 cow|22 elephant|23 bear|24 zebra|25 giraffe",
    "accessory": "27 backpack|28 umbrella|31 handbag|32 tie|33 suitcase",
    "sports": "34 frisbee|35 skis|36 snowboard|37 sports ball|38 kite|39 baseball bat"
    "|40 baseball glove|41 skateboard|42 surfboard|43 tennis racket",
    "kitchen": "44 bottle|46 wine glass|47 cup|48 fork|49 knife|50 spoon|51 bowl",
    "food": "52 banana|53 apple|54 sandwich|55 orange|56 broccoli|57 carrot|58 hot dog|59 pizza"
    "|60 donut|61 cake",
    "furniture": "62 chair|63 couch|64 potted plant|65 bed|67 dining table|70 toilet",
    "electronic": "72 tv|73 laptop|74 mouse|75 remote|76 keyboard|77 cell phone",
    "appliance": "78 microwave|79 oven|80 toaster|81 sink|82 refrigerator",
    "indoor": "84 book|85 clock|86 vase|87 scissors|88 teddy bear|89 hair drier|90 toothbrush",
}
# COCO-Stuff 2017: 92..182 plus 183 "other".
_STUFF_BY_SUPER = {
    "textile": "92 banner|93 blanket|104 cloth|105 clothes|109 curtain|131 mat|137 napkin|141 pillow"
    "|152 rug|167 textile-other|168 towel",
    "plant": "94 branch|97 bush|119 flower|124 grass|129 leaves|134 moss|142 plant-other|163 straw|169 tree",
    "building": "95 bridge|96 building-other|128 house|151 roof|158 skyscraper|166 tent",
    "furniture-stuff": "98 cabinet|107 counter|108 cupboard|110 desk-stuff|112 door-stuff"
    "|123 furniture-other|130 light|133 mirror-stuff|156 shelf|161 stairs|165 table",
    "structural": "99 cage|113 fence|138 net|146 railing|164 structural-other",
    "raw-material": "100 cardboard|132 metal|139 paper|143 plastic",
    "floor": "101 carpet|114 floor-marble|115 floor-other|116 floor-stone|117 floor-tile|118 floor-wood",
    "ceiling": "102 ceiling-other|103 ceiling-tile",
    "sky": "106 clouds|157 sky-other",
    "ground": "111 dirt|125 gravel|126 ground-other|136 mud|140 pavement|144 platform|145 playingfield"
    "|147 railroad|149 road|154 sand|159 snow",
    "water": "120 fog|148 river|155 sea|178 water-other",
    "food-stuff": "121 food-other|122 fruit|153 salad|170 vegetable",
    "solid": "127 hill|135 mountain|150 rock|160 solid-other|162 stone|182 wood",
    "wall": "171 wall-brick|172 wall-concrete|173 wall-other|174 wall-panel|175 wall-stone|176 wall-tile"
    "|177 wall-wood",
    "window": "179 waterdrops|180 window-blind|181 window-other",
    "other": "183 other",
}
# COCO panoptic keeps 36 COCO-Stuff classes as they are and merges the rest into 184..200.
_PANOPTIC_KEPT_STUFF = {92, 93, 95, 100, 107, 109, 112, 118, 119, 122, 125, 128, 130, 133, 138, 141,
                        144, 145, 147, 148, 149, 151, 154, 155, 156, 159, 161, 166, 168, 171, 175,
                        176, 177, 178, 180, 181}
_PANOPTIC_MERGED = {
    "plant": "184 tree-merged|193 grass-merged",
    "building": "185 fence-merged|197 building-other-merged",
    "ceiling": "186 ceiling-merged",
    "sky": "187 sky-other-merged",
    "furniture-stuff": "188 cabinet-merged|189 table-merged",
    "floor": "190 floor-other-merged",
    "ground": "191 pavement-merged|194 dirt-merged",
    "solid": "192 mountain-merged|198 rock-merged",
    "raw-material": "195 paper-merged",
    "food-stuff": "196 food-other-merged",
    "wall": "199 wall-other-merged",
    "textile": "200 rug-merged",
}
KEYPOINT_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
                  "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
                  "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"]
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
            [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
LICENSES = [
    {"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1,
     "name": "Attribution-NonCommercial-ShareAlike License"},
    {"url": "http://creativecommons.org/licenses/by-nc/2.0/", "id": 2, "name": "Attribution-NonCommercial License"},
    {"url": "http://creativecommons.org/licenses/by-nc-nd/2.0/", "id": 3,
     "name": "Attribution-NonCommercial-NoDerivs License"},
    {"url": "http://creativecommons.org/licenses/by/2.0/", "id": 4, "name": "Attribution License"},
    {"url": "http://creativecommons.org/licenses/by-sa/2.0/", "id": 5, "name": "Attribution-ShareAlike License"},
    {"url": "http://creativecommons.org/licenses/by-nd/2.0/", "id": 6, "name": "Attribution-NoDerivs License"},
    {"url": "http://flickr.com/commons/usage/", "id": 7, "name": "No known copyright restrictions"},
    {"url": "http://www.usa.gov/copyright.shtml", "id": 8, "name": "United States Government Work"},
]
_WORDS = ("a an the man woman child dog cat bus train plate pizza table street field kitchen bench "
          "sitting standing riding eating holding next to on in with of near large small red blue "
          "green white black two three some people player ball kite sky water beach snow road").split()
_UNICODE_WORDS = ["café", "naïve", "Zürich", "東京", "😀", "São Paulo", "crème brûlée"]
_EDGE_CAPTIONS = [
    "Emoji 😀 family 👩\u200d👩\u200d👧 flag 🇯🇵 and a dog 🐕.",
    "中文字幕：一只猫坐在垫子上。",
    "日本語のキャプション、カタカナとひらがな。",
    "עברית: חתול יושב על השטיח.",
    "العربية: قطة تجلس على السجادة.",
    "He said \"hello\", she said 'bye' and wrote C:\\path\\to\\file.",
    "line one\nline two\r\nline three\tafter a tab",
    "  leading and trailing spaces  ",
    "decomposed e\u0301 vs composed \u00e9",
    "",
]
_EDGE_FILE_NAMES = ["sub/dir/x.jpg", "with space.jpg", "кириллица с пробелом.jpg", "日本.png"]
_EDGE_RICH = 0  # image (640x480) that carries the hand-written edge-case annotations
_EDGE_EMPTY = (4, 5)  # images without annotations in every task (5 also has no panoptic record)
_EDGE_MIN_IMAGES = 8
_BIG = 2**40  # ids above 2^31 for edge cases
_CROWD_ID_BASE = 900_100_000_000  # real COCO crowd ids look like 900100000000 + image id
_MAX_SEGMENT_ID = 2**24 - 1
_PNG_THREADS = min(4, os.cpu_count() or 1)


def _parse_categories(table: dict[str, str]) -> list[dict[str, Any]]:
    """Expand a compact "id name|id name" table into COCO category dicts sorted by id."""
    cats = [{"supercategory": sup, "id": int(item.split(" ", 1)[0]), "name": item.split(" ", 1)[1]}
            for sup, items in table.items() for item in items.split("|")]
    return sorted(cats, key=lambda c: c["id"])


THING_CATEGORIES = _parse_categories(_THINGS_BY_SUPER)
STUFF_CATEGORIES = _parse_categories(_STUFF_BY_SUPER)
assert len(THING_CATEGORIES) == 80 and [c["id"] for c in STUFF_CATEGORIES] == list(range(92, 184))


def _color(name: str) -> list[int]:
    """A stable per-name RGB colour, independent of the seed (like COCO's fixed panoptic colours)."""
    crc = zlib.crc32(name.encode())
    return [crc & 255, (crc >> 8) & 255, (crc >> 16) & 255]


def _panoptic_categories() -> list[dict[str, Any]]:
    """COCO panoptic's 133 classes: 80 things (isthing 1) and 53 stuff (isthing 0), each with a colour."""
    stuff = [c for c in STUFF_CATEGORIES if c["id"] in _PANOPTIC_KEPT_STUFF]
    stuff += _parse_categories(_PANOPTIC_MERGED)
    cats = [{**c, "isthing": 1} for c in THING_CATEGORIES] + [{**c, "isthing": 0} for c in stuff]
    return [{**c, "color": _color(c["name"])} for c in sorted(cats, key=lambda c: c["id"])]


PANOPTIC_CATEGORIES = _panoptic_categories()
assert len(PANOPTIC_CATEGORIES) == 133


def _rng(seed: int, stream: str, *keys: int) -> np.random.Generator:
    """An independent stream per (seed, purpose, index): tasks do not perturb each other."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode()), *keys])


def _category_sampler(cats: list[dict[str, Any]], seed: int, stream: str) -> tuple[np.ndarray, np.ndarray]:
    """Category ids with a long-tailed distribution and a dominant "person" like COCO."""
    ids = np.array([c["id"] for c in cats], dtype=np.int64)
    weights = 1.0 / (_rng(seed, stream + ".cats").permutation(len(ids)) + 1.0) ** 0.8
    weights[ids == 1] = weights.sum() * 0.4
    return ids, weights / weights.sum()


# ---------------------------------------------------------------------------------------- images

def _info(seed: int, edge: bool) -> dict[str, Any]:
    """COCO's info block; fixed dates (never the clock) keep the output byte-stable."""
    info: dict[str, Any] = {"description": f"Synthetic COCO-like dataset (dsrepo gen_coco, seed {seed})",
                            "url": "http://cocodataset.org", "version": "1.0", "year": 2017,
                            "contributor": "dsrepo gen_coco", "date_created": "2017/09/01"}
    if edge:
        info["x_info_note"] = {"generator": "gen_coco", "edge_cases": True}
    return info


def _make_images(n: int, seed: int, subset: str, edge: bool) -> list[dict[str, Any]]:
    """Image records with the real COCO keys, non-contiguous ids in shuffled order."""
    rng = _rng(seed, "images")
    ids = (rng.choice(max(581_929, 4 * n), size=n, replace=False) + 1).tolist()
    short = rng.integers(200, 641, n)
    long = np.where(rng.random(n) < 0.85, 640, rng.integers(200, 641, n))
    short, long = np.minimum(short, long), np.maximum(short, long)
    landscape = rng.random(n) < 0.65
    widths, heights = np.where(landscape, long, short), np.where(landscape, short, long)
    licenses = rng.integers(1, 9, n)
    seconds = rng.integers(0, 365 * 24 * 3600, n)
    flickr = rng.integers(0, 2**31, (n, 4))
    if edge:
        ids = [_BIG + 7 * k + 1 if k % 2 == 0 else i for k, i in enumerate(ids)]
        widths[_EDGE_RICH], heights[_EDGE_RICH] = 640, 480
    base = dt.datetime(2013, 11, 14, 11, 18, 45)
    images = []
    for k in range(n):
        file_name = f"{ids[k]:012d}.jpg"
        if edge and k < len(_EDGE_FILE_NAMES):
            file_name = _EDGE_FILE_NAMES[k]
        f = [int(v) for v in flickr[k]]
        images.append({
            "license": int(licenses[k]),
            "file_name": file_name,
            "coco_url": f"http://images.cocodataset.org/{subset}/{file_name}",
            "height": int(heights[k]),
            "width": int(widths[k]),
            "date_captured": (base + dt.timedelta(seconds=int(seconds[k]))).strftime("%Y-%m-%d %H:%M:%S"),
            "flickr_url": f"http://farm{f[0] % 9 + 1}.staticflickr.com/{f[1] % 9000 + 1000}/"
                          f"{f[2]}_{f[3]:08x}_z.jpg",
            "id": ids[k],
        })
    if edge:
        images[6]["x_image_meta"] = {"camera": "Nikon D70", "tags": ["a", "б", "😀"], "exposure": 0.1}
        del images[7]["flickr_url"]  # optional key absent, not null
    return images


# ----------------------------------------------------------------------------- geometry helpers

def _polygon_part(rng: np.random.Generator, cx: float, cy: float, r: float, w: int, h: int) -> list[float]:
    """A star-shaped polygon clipped to the image, coordinates with 2 decimals like COCO."""
    n = int(rng.integers(3, 61))  # real COCO polygons average ~35 points per object
    angles = np.sort(rng.uniform(0.0, 2 * np.pi, n))
    radii = r * rng.uniform(0.4, 1.0, n)
    xs = np.clip(cx + radii * np.cos(angles), 0, w)
    ys = np.clip(cy + radii * np.sin(angles), 0, h)
    return np.round(np.column_stack([xs, ys]).ravel(), 2).tolist()


def _polygon_geometry(rng: np.random.Generator, w: int, h: int, parts: int) -> tuple[list, float, list]:
    """(segmentation, area, bbox) of a 1..3-part polygon object with a non-empty raster."""
    while True:
        size = float(np.exp(rng.uniform(np.log(6.0), np.log(0.8 * min(w, h)))))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        segm = [_polygon_part(rng, cx, cy, size / 2, w, h)]
        for _ in range(parts - 1):
            segm.append(_polygon_part(rng, cx + rng.uniform(-size, size), cy + rng.uniform(-size, size),
                                      size / 4 + 2, w, h))
        area = int(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects(segm, h, w))))
        if area > 0:
            break
    xs = [x for part in segm for x in part[0::2]]
    ys = [y for part in segm for y in part[1::2]]
    x0, y0 = min(xs), min(ys)
    return segm, float(area), [x0, y0, round(max(xs) - x0, 2), round(max(ys) - y0, 2)]


def _blob_mask(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A non-empty union of 1..3 ellipses, as a (h, w) bool mask."""
    mask = np.zeros((h, w), dtype=bool)
    while not mask.any():
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        scale = float(np.exp(rng.uniform(np.log(8.0), np.log(0.6 * min(w, h)))))
        for _ in range(int(rng.integers(1, 4))):
            _paint(mask, True, cx + rng.uniform(-scale, scale) / 2, cy + rng.uniform(-scale, scale) / 2,
                   scale * rng.uniform(0.3, 0.7), scale * rng.uniform(0.3, 0.7), ellipse=True)
    return mask


def _paint(canvas: np.ndarray, value: Any, cx: float, cy: float, rx: float, ry: float, ellipse: bool) -> None:
    """Overwrite an axis-aligned rectangle or ellipse on a 2-D array (vectorised on its bounding box)."""
    h, w = canvas.shape
    x0, x1 = max(0, int(cx - rx)), min(w, int(np.ceil(cx + rx)) + 1)
    y0, y1 = max(0, int(cy - ry)), min(h, int(np.ceil(cy + ry)) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    if not ellipse:
        canvas[y0:y1, x0:x1] = value
        return
    yy, xx = np.ogrid[y0:y1, x0:x1]
    inside = ((xx + 0.5 - cx) / max(rx, 0.5)) ** 2 + ((yy + 0.5 - cy) / max(ry, 0.5)) ** 2 <= 1.0
    canvas[y0:y1, x0:x1][inside] = value


def _mask_rle(mask: np.ndarray, compressed: bool) -> tuple[dict[str, Any], int, list[float]]:
    """(segmentation, area, bbox) for a mask as compressed (string) or uncompressed (list) RLE."""
    h, w = mask.shape
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    area = int(mask_utils.area(rle))
    if compressed:
        return {"counts": rle["counts"].decode("ascii"), "size": [h, w]}, area, bbox
    flat = mask.ravel(order="F")
    bounds = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts.insert(0, 0)
    return {"counts": counts, "size": [h, w]}, area, bbox


def _column_runs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal labels in column-major order, broken at column starts: (values, starts, lengths)."""
    h = labels.shape[0]
    flat = labels.ravel(order="F")
    brk = np.ones(flat.size, dtype=bool)
    brk[1:] = flat[1:] != flat[:-1]
    brk[::h] = True
    starts = np.flatnonzero(brk)
    return flat[starts], starts, np.diff(np.append(starts, flat.size))


def _label_stats(labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """Per label 0..n: pixel areas, inclusive bboxes [x, y, w, h], and the column runs."""
    h, w = labels.shape
    vals, starts, lens = runs = _column_runs(labels)
    vals = vals.astype(np.intp)
    cols, rows = starts // h, starts % h
    area = np.bincount(vals, weights=lens, minlength=n + 1).astype(np.int64)
    x0, y0 = np.full(n + 1, w), np.full(n + 1, h)
    x1, y1 = np.full(n + 1, -1), np.full(n + 1, -1)
    np.minimum.at(x0, vals, cols)
    np.maximum.at(x1, vals, cols)
    np.minimum.at(y0, vals, rows)
    np.maximum.at(y1, vals, rows + lens - 1)
    return area, np.column_stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1]), runs


def _label_rle(runs: tuple[np.ndarray, ...], label: int, h: int, w: int) -> str:
    """Compressed RLE string of one label of a label map, from its column runs (no full-size mask)."""
    vals, _, lens = runs
    member = vals == label
    group_starts = np.concatenate(([0], np.flatnonzero(member[1:] != member[:-1]) + 1))
    counts = np.add.reduceat(lens, group_starts).tolist()
    if member[0]:
        counts.insert(0, 0)
    return mask_utils.frPyObjects({"counts": counts, "size": [h, w]}, h, w)["counts"].decode("ascii")


def _draw_label_map(rng: np.random.Generator, h: int, w: int, sizes: Sequence[tuple[float, float]],
                    cover_first: bool) -> np.ndarray:
    """Paint shapes 1..len(sizes) in order (later overwrite earlier); 0 is void/unlabeled."""
    labels = np.zeros((h, w), dtype=np.uint8)
    for k, (lo, hi) in enumerate(sizes, start=1):
        if k == 1 and cover_first:
            labels[:] = 1
            continue
        rx, ry = rng.uniform(lo, hi, 2) * np.array([w, h]) / 2
        _paint(labels, k, rng.uniform(0, w), rng.uniform(0, h), rx, ry, ellipse=bool(rng.random() < 0.5))
    return labels


def _assign_ids(rng: np.random.Generator, anns: list[dict[str, Any]], start: int, edge: bool) -> None:
    """Increasing, non-contiguous annotation ids; in edge mode every other id is above 2^31."""
    pending = [a for a in anns if a["id"] is None]
    ids = start + np.cumsum(rng.integers(1, 50, len(pending)))
    for k, (ann, i) in enumerate(zip(pending, ids.tolist())):
        ann["id"] = _BIG + i if edge and k % 2 == 0 else i


def _dataset(seed: int, edge: bool, images: list[dict[str, Any]], **sections: Any) -> dict[str, Any]:
    """Top-level COCO dict in COCO's key order; edge mode adds an unknown vendor key."""
    data: dict[str, Any] = {"info": _info(seed, edge), "licenses": LICENSES, "images": images, **sections}
    if edge:
        data["x_vendor"] = {"tool": "gen_coco", "nested": {"list": [1, 2.5, None, True, "ü"], "empty": {}}}
    return data


def _edge_categories(base: list[dict[str, Any]], order: Sequence[int]) -> list[dict[str, Any]]:
    """Categories in a deliberately unsorted order, some with keys COCO does not define."""
    by_id = {c["id"]: dict(c) for c in base}
    cats = [by_id.get(i, {"supercategory": "thing", "id": i, "name": f"zero-id thing {i}"}) for i in order]
    cats[0]["color"] = [255, 0, 0]
    cats[0]["synonyms"] = [cats[0]["name"].upper(), "synonyme ünïcode"]
    cats[1]["x_cat_meta"] = {"source": "edge", "weight": 0.30000000000000004}
    return cats


def _edge_things() -> list[dict[str, Any]]:
    """Thing categories for edge mode: ids 7, 3, 90, 0, 1, 61 in that order, one non-ASCII name."""
    cats = _edge_categories(THING_CATEGORIES, (7, 3, 90, 0, 1, 61))
    cats[-1]["name"] = "crème brûlée"
    return cats


# ------------------------------------------------------------------------------------ instances

def _instances(images: list[dict[str, Any]], seed: int, edge: bool) -> dict[str, Any]:
    """~7.3 objects per image: polygons, ~3% compressed RLE, ~1% crowd with uncompressed RLE."""
    cats = _edge_things() if edge else THING_CATEGORIES
    cat_ids, cat_p = _category_sampler(cats, seed, "instances")
    anns: list[dict[str, Any]] = []
    for k, img in enumerate(images):
        if edge and k in _EDGE_EMPTY:
            continue
        rng = _rng(seed, "instances", k)
        w, h, image_id = img["width"], img["height"], img["id"]
        # ~1% of images without objects (as in val2017), else 1 + a long tail: mean ~7.3
        count = 0 if rng.random() < 0.01 else 1 + min(int(rng.negative_binomial(1.5, 1.5 / (1.5 + 6.3))), 90)
        has_crowd = count > 0 and rng.random() < 0.075
        for j in range(count):
            crowd = has_crowd and j == count - 1
            if crowd or rng.random() < 0.03:
                segm, area, bbox = _mask_rle(_blob_mask(rng, w, h), compressed=not crowd)
            else:
                parts = int(rng.choice([1, 2, 3], p=[0.8, 0.15, 0.05]))
                segm, area, bbox = _polygon_geometry(rng, w, h, parts)
            anns.append({"segmentation": segm, "area": area, "iscrowd": int(crowd), "image_id": image_id,
                         "bbox": bbox, "category_id": int(rng.choice(cat_ids, p=cat_p)),
                         "id": _CROWD_ID_BASE + image_id if crowd else None})
        if edge and k == _EDGE_RICH:
            anns.extend(_edge_instance_anns(rng, img))
    _assign_ids(_rng(seed, "instances.ids"), anns, 0, edge)
    return _dataset(seed, edge, images, annotations=anns, categories=cats)


def _edge_instance_anns(rng: np.random.Generator, img: dict[str, Any]) -> list[dict[str, Any]]:
    """Hand-written annotations for the 640x480 edge image: exact ints, odd floats, extensions."""
    w, h, image_id = img["width"], img["height"], img["id"]
    x0, y0 = 0.30000000000000004, 1e-07
    odd_area = (40.5 - x0) * (30.25 - y0)
    multi, multi_area, multi_bbox = _polygon_geometry(rng, w, h, parts=3)
    crowd, crowd_area, crowd_bbox = _mask_rle(_blob_mask(rng, w, h), compressed=False)
    packed, packed_area, packed_bbox = _mask_rle(_blob_mask(rng, w, h), compressed=True)

    def ann(segm: Any, area: float, bbox: list, cat: int, crowd_flag: int = 0, **extra: Any) -> dict[str, Any]:
        return {"segmentation": segm, "area": area, "iscrowd": crowd_flag, "image_id": image_id,
                "bbox": bbox, "category_id": cat, "id": None, **extra}

    return [
        ann([[282, 207, 330, 207, 330, 356, 282, 356]], 7152, [282, 207, 48, 149], 3),
        ann([[x0, y0, 40.5, y0, 40.5, 30.25, x0, 30.25]], odd_area, [x0, y0, 40.5 - x0, 30.25 - y0], 7,
            score=0.8745),
        ann([[10.0, 10.0, 10.01, 10.0, 10.0, 10.00002]], 1e-07, [10.0, 10.0, 0.01, 2e-05], 0,
            x_ann_meta={"reviewed": False, "note": None}),
        ann(multi, multi_area, multi_bbox, 90, attributes={"occluded": True, "x": 1, "label": "тест", "z": 0.5}),
        ann(crowd, crowd_area, crowd_bbox, 1, crowd_flag=1),
        ann(packed, packed_area, packed_bbox, 61, score=1),
    ]


# ---------------------------------------------------------------------------- person keypoints

def _keypoints(rng: np.random.Generator, bbox: list[float], w: int, h: int, n: int,
               visibility: np.ndarray | None = None) -> tuple[list[int], int]:
    """COCO keypoint triplets inside the bbox; v=0 points are written as 0,0,0."""
    if visibility is None:
        visibility = rng.choice([0, 1, 2], size=n, p=[0.35, 0.1, 0.55])
    xs = np.clip(bbox[0] + rng.random(n) * bbox[2], 0, w - 1).astype(np.int64)
    ys = np.clip(bbox[1] + rng.random(n) * bbox[3], 0, h - 1).astype(np.int64)
    xs[visibility == 0] = 0
    ys[visibility == 0] = 0
    return np.column_stack([xs, ys, visibility]).ravel().tolist(), int(np.count_nonzero(visibility))


def _person_keypoints(images: list[dict[str, Any]], seed: int, edge: bool) -> dict[str, Any]:
    """~2 people on half of the images, 17 keypoints each; crowd people have no keypoints."""
    person = {"supercategory": "person", "id": 1, "name": "person", "keypoints": KEYPOINT_NAMES,
              "skeleton": SKELETON}
    cats = [person]
    if edge:  # a second category with another keypoint count, listed after id 1
        person["x_cat_meta"] = {"source": "edge"}
        cats.append({"supercategory": "face", "id": 0, "name": "face",
                     "keypoints": ["left_eye", "right_eye", "nose"], "skeleton": [[1, 3], [2, 3]]})
    anns: list[dict[str, Any]] = []
    for k, img in enumerate(images):
        rng = _rng(seed, "person_keypoints", k)
        with_people = rng.random() < 0.5 or (edge and k == _EDGE_RICH)
        if not with_people or (edge and k in _EDGE_EMPTY):
            continue
        for j in range(1 + int(rng.poisson(1.0))):
            crowd = j == 0 and rng.random() < 0.02  # at most one crowd per image: its id derives from the image
            anns.append(_person(rng, img, 1, len(KEYPOINT_NAMES), crowd))
        if edge and k == _EDGE_RICH:
            anns += [_person(rng, img, 1, len(KEYPOINT_NAMES), False, np.arange(len(KEYPOINT_NAMES)) % 3),
                     _person(rng, img, 0, 3, False), _person(rng, img, 1, len(KEYPOINT_NAMES), True)]
            anns[-2]["x_ann_meta"] = {"pose": "unknown"}
            anns[-1]["id"] = None  # a second crowd on this image: take a sequence id instead
    _assign_ids(_rng(seed, "person_keypoints.ids"), anns, 0, edge)
    return _dataset(seed, edge, images, annotations=anns, categories=cats)


def _person(rng: np.random.Generator, img: dict[str, Any], cat: int, n_kpts: int, crowd: bool,
            visibility: np.ndarray | None = None) -> dict[str, Any]:
    """One keypoint annotation; a crowd one has an uncompressed RLE, zero keypoints and a 9001... id."""
    w, h, image_id = img["width"], img["height"], img["id"]
    if crowd:
        segm, area, bbox = _mask_rle(_blob_mask(rng, w, h), compressed=False)
        kpts, num = [0] * (3 * n_kpts), 0
    else:
        segm, area, bbox = _polygon_geometry(rng, w, h, int(rng.integers(1, 3)))
        kpts, num = _keypoints(rng, bbox, w, h, n_kpts, visibility)
    return {"segmentation": segm, "num_keypoints": num, "area": area, "iscrowd": int(crowd), "keypoints": kpts,
            "image_id": image_id, "bbox": bbox, "category_id": cat,
            "id": _CROWD_ID_BASE + image_id if crowd else None}


# ------------------------------------------------------------------------------ captions, labels

def _caption(rng: np.random.Generator) -> str:
    words = [str(x) for x in rng.choice(_WORDS, size=int(rng.integers(6, 14)))]
    if rng.random() < 0.05:
        words.insert(int(rng.integers(0, len(words))), str(rng.choice(_UNICODE_WORDS)))
    return " ".join(words).capitalize() + "."


def _captions(images: list[dict[str, Any]], seed: int, edge: bool) -> dict[str, Any]:
    """5 captions per image; no categories, like COCO's captions files."""
    anns: list[dict[str, Any]] = []
    for k, img in enumerate(images):
        if edge and k in _EDGE_EMPTY:
            continue
        rng = _rng(seed, "captions", k)
        texts = [_caption(rng) for _ in range(5)]
        if edge and k < 4:
            texts += _EDGE_CAPTIONS[k::4]
        anns.extend({"image_id": img["id"], "id": None, "caption": t} for t in texts)
    _assign_ids(_rng(seed, "captions.ids"), anns, 0, edge)
    if edge:
        anns[1]["x_ann_meta"] = {"language": "en"}
    return _dataset(seed, edge, images, annotations=anns)


def _labels(images: list[dict[str, Any]], seed: int, edge: bool) -> dict[str, Any]:
    """Datumaro's image-level labels: 1..3 distinct categories per image."""
    cats = _edge_things() if edge else THING_CATEGORIES
    cat_ids, cat_p = _category_sampler(cats, seed, "labels")
    anns: list[dict[str, Any]] = []
    for k, img in enumerate(images):
        if edge and k in _EDGE_EMPTY:
            continue
        rng = _rng(seed, "labels", k)
        chosen = rng.choice(cat_ids, size=int(rng.integers(1, 4)), replace=False, p=cat_p)
        anns.extend({"id": None, "image_id": img["id"], "category_id": int(c)} for c in chosen)
    _assign_ids(_rng(seed, "labels.ids"), anns, 0, edge)
    if edge:
        anns[0]["score"] = 0.5
        anns[1]["attributes"] = {"occluded": True, "x": 1}
        anns[2]["x_ann_meta"] = [1, "two", None]
    return _dataset(seed, edge, images, annotations=anns, categories=cats)


def _image_info(images: list[dict[str, Any]], seed: int, edge: bool) -> dict[str, Any]:
    """Images and categories only, without an "annotations" key, like COCO test-dev image_info."""
    cats = _edge_things() if edge else THING_CATEGORIES
    return _dataset(seed, edge, images, categories=cats)


# ------------------------------------------------------------------------------- stuff, panoptic

def _stuff(images: list[dict[str, Any]], seed: int, edge: bool) -> dict[str, Any]:
    """COCO-Stuff: a few non-overlapping compressed-RLE regions per image, one per category."""
    cats = STUFF_CATEGORIES
    if edge:
        cats = _edge_categories(STUFF_CATEGORIES, (183, 149, 92, 157, 105, 124))
    cat_ids = np.array([c["id"] for c in cats])
    anns: list[dict[str, Any]] = []
    for k, img in enumerate(images):
        if edge and k in _EDGE_EMPTY:
            continue
        rng = _rng(seed, "stuff", k)
        w, h, image_id = img["width"], img["height"], img["id"]
        n = int(rng.integers(1, 6))
        labels = _draw_label_map(rng, h, w, [(0.3, 1.0)] * n, cover_first=bool(rng.random() < 0.5))
        area, bbox, runs = _label_stats(labels, n)
        chosen = rng.choice(cat_ids, size=n, replace=False)
        for label in np.flatnonzero(area[1:]) + 1:
            ann = {"segmentation": {"counts": _label_rle(runs, int(label), h, w), "size": [h, w]},
                   "area": float(area[label]), "iscrowd": 0, "image_id": image_id,
                   "bbox": [float(v) for v in bbox[label]], "category_id": int(chosen[label - 1]), "id": None}
            anns.append(ann)
        if edge and k == _EDGE_RICH:
            anns[-1]["x_ann_meta"] = {"stuff": True}
    _assign_ids(_rng(seed, "stuff.ids"), anns, 10_000_000, edge)
    return _dataset(seed, edge, images, annotations=anns, categories=cats)


def panoptic_png_name(file_name: str) -> str:
    """The panoptic PNG for an image: same relative path, .png suffix."""
    return Path(file_name).with_suffix(".png").as_posix()


def _panoptic(images: list[dict[str, Any]], seed: int, edge: bool, png_dir: Path) -> dict[str, Any]:
    """Panoptic records plus one RGB PNG per record (segment id = R + 256 G + 256^2 B)."""
    cats = PANOPTIC_CATEGORIES
    if edge:
        by_id = {c["id"]: dict(c) for c in cats}
        cats = [by_id[i] for i in (187, 1, 3, 149, 90, 199, 17)]
        cats[2]["x_cat_meta"] = {"source": "edge"}
    stuff_ids = np.array([c["id"] for c in cats if not c["isthing"]])
    thing_ids, thing_p = _category_sampler([c for c in cats if c["isthing"]], seed, "panoptic")
    anns: list[dict[str, Any]] = []
    # zlib releases the GIL: threads encode PNGs while the main thread draws the next id map.
    with ThreadPoolExecutor(_PNG_THREADS) as pool:
        pending: deque[Future[None]] = deque()
        for k, img in enumerate(images):
            if edge and k == _EDGE_EMPTY[1]:
                continue  # an image without any panoptic record
            rng = _rng(seed, "panoptic", k)
            record, picture = _panoptic_image(rng, img, stuff_ids, thing_ids, thing_p,
                                              rich=edge and k == _EDGE_RICH, void=edge and k == _EDGE_EMPTY[0])
            anns.append(record)
            pending.append(pool.submit(_save_png, picture, png_dir / record["file_name"]))
            if len(pending) > 4 * _PNG_THREADS:  # bound memory when encoding lags behind
                pending.popleft().result()
        for future in pending:
            future.result()
    return _dataset(seed, edge, images, annotations=anns, categories=cats)


def _panoptic_image(rng: np.random.Generator, img: dict[str, Any], stuff_ids: np.ndarray, thing_ids: np.ndarray,
                    thing_p: np.ndarray, rich: bool, void: bool) -> tuple[dict[str, Any], Image.Image]:
    """Big stuff shapes then small things painted over each other; only surviving segments are listed.

    ``rich`` forces the edge cases (segment id 2^24-1, a crowd thing, unknown keys); ``void`` blanks the map.
    """
    w, h = img["width"], img["height"]
    n_stuff = int(rng.integers(1, min(4, len(stuff_ids)) + 1))
    n_things = int(rng.integers(2 if rich else 0, 13))
    sizes = [(0.4, 1.2)] * n_stuff + [(0.05, 0.4)] * n_things
    labels = _draw_label_map(rng, h, w, sizes, cover_first=bool(rng.random() < 0.6))
    if void:
        labels[:] = 0
    area, bbox, _ = _label_stats(labels, n_stuff + n_things)
    alive = np.flatnonzero(area[1:]) + 1
    seg_ids = np.concatenate(([0], rng.choice(_MAX_SEGMENT_ID - 1, size=n_stuff + n_things, replace=False) + 1))
    cat_of = np.concatenate(([0], rng.choice(stuff_ids, size=n_stuff, replace=False),
                             rng.choice(thing_ids, size=n_things, p=thing_p)))
    crowd = np.concatenate((np.zeros(1 + n_stuff, bool), rng.random(n_things) < 0.03))
    if rich:  # the last painted shape is a thing and always survives
        seg_ids[alive[0]] = _MAX_SEGMENT_ID
        crowd[alive[-1]] = True
    segments = [{"id": int(seg_ids[s]), "category_id": int(cat_of[s]), "iscrowd": int(crowd[s]),
                 "bbox": [int(v) for v in bbox[s]], "area": int(area[s])} for s in alive]
    record: dict[str, Any] = {"segments_info": segments, "file_name": panoptic_png_name(img["file_name"]),
                              "image_id": img["id"]}
    if rich:
        segments[0]["x_segment_meta"] = {"source": "edge", "confidence": 1e-07}
        record["x_ann_meta"] = {"annotator": "edge"}
    lut = seg_ids.astype("<u4")  # little-endian bytes R, G, B, 0 read as RGBX
    return record, Image.frombytes("RGB", (w, h), lut[labels].tobytes(), "raw", "RGBX")


def _save_png(picture: Image.Image, path: Path) -> None:
    """Runs in a worker thread; sub-folder file names need their folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, format="PNG")


# ------------------------------------------------------------------------------------- driver

def _write_images(images: list[dict[str, Any]], image_dir: Path) -> None:
    """Tiny flat-colour files of the declared size; format follows the extension."""
    for img in images:
        path = image_dir / img["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        shade = img["id"] % 200 + 28
        picture = Image.new("RGB", (img["width"], img["height"]), (shade, shade, shade))
        if path.suffix.lower() == ".png":
            picture.save(path, format="PNG")
        else:
            picture.save(path, format="JPEG", quality=50)


def generate(out_dir: Path, *, images: int = 5000, seed: int = 0, tasks: Sequence[str] = ALL_TASKS,
             subset: str = "val2017", edge_cases: bool = False, write_images: bool = False) -> dict[str, int]:
    """Write a synthetic COCO folder and return counts: images, annotations per task.

    ``panoptic`` counts one record per image; ``panoptic_segments`` counts segments.
    """
    unknown = set(tasks) - set(ALL_TASKS)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)}; choose from {', '.join(ALL_TASKS)}")
    if images < 1 or (edge_cases and images < _EDGE_MIN_IMAGES):
        raise ValueError(f"need at least {_EDGE_MIN_IMAGES if edge_cases else 1} images")
    out_dir = Path(out_dir)
    ann_dir = out_dir / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    image_records = _make_images(images, seed, subset, edge_cases)
    counts = {"images": images}
    builders = {"instances": _instances, "person_keypoints": _person_keypoints, "captions": _captions,
                "labels": _labels, "image_info": _image_info, "stuff": _stuff}
    for task in [t for t in ALL_TASKS if t in tasks]:
        if task == "panoptic":
            data = _panoptic(image_records, seed, edge_cases, ann_dir / f"panoptic_{subset}")
        else:
            data = builders[task](image_records, seed, edge_cases)
        counts[task] = len(data.get("annotations", []))
        if task == "panoptic":
            counts["panoptic_segments"] = sum(len(a["segments_info"]) for a in data["annotations"])
        (ann_dir / f"{task}_{subset}.json").write_bytes(orjson.dumps(data))
    if write_images:
        _write_images(image_records, out_dir / "images" / subset)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate a seeded synthetic COCO dataset.")
    parser.add_argument("out", type=Path, help="output folder (annotations/ and images/ go inside)")
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default=",".join(ALL_TASKS), help="comma-separated: " + ",".join(ALL_TASKS))
    parser.add_argument("--subset", default="val2017")
    parser.add_argument("--edge-cases", action="store_true", help="add format corner cases (use ~20 images)")
    parser.add_argument("--write-images", action="store_true", help="also write tiny image files")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        counts = generate(args.out, images=args.images, seed=args.seed,
                          tasks=[t.strip() for t in args.tasks.split(",") if t.strip()], subset=args.subset,
                          edge_cases=args.edge_cases, write_images=args.write_images)
    except ValueError as exc:
        parser.error(str(exc))
    print(orjson.dumps({**counts, "seconds": round(time.perf_counter() - started, 2)}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
