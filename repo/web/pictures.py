"""The web app's pictures (thumbnails, overlays), drawn by `repo.render` and kept on disk.

The cache lives in the project folder, `DIR/.dsrepo-cache/<kind>/<xx>/<key>.png` (for a
PostgreSQL project too: its folder holds dsrepo.json). A key is a digest of everything the
picture shows (`repo.dataset.fingerprint`: the image record, the content hash of each
annotation drawn, its label and category metadata) plus the kind, size and the renderer's
version. So a picture is drawn anew exactly when what it shows changes, whether by a new
revision or by an uncommitted change to the working state, and an image that is the same in
two revisions is drawn once. Writes are atomic (a temporary file renamed into place); a
folder that cannot be written only means no caching.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from PIL import Image

from repo.dataset import Item, fingerprint
from repo.render import RENDERER_VERSION, draw

CACHE_FOLDER = ".dsrepo-cache"
THUMBNAIL = 240  # pixels, the longer side
OVERLAY_MIN = 320  # tiny images are enlarged (by a whole factor) to at least this many pixels
MAX_SCALE = 32


class PictureCache:
    def __init__(self, root: Path):
        self.root = root

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.png"

    def get(self, kind: str, key: str, make: Callable[[], bytes]) -> bytes:
        path = self.path(kind, key)
        try:
            return path.read_bytes()
        except OSError:
            pass
        data = make()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except OSError:
            pass  # a read-only folder: serve without caching
        return data


def with_tasks(items: Sequence[Item], tasks: Collection[str] | None) -> list[Item]:
    """The items with only their annotations of `tasks` (None: all)."""
    if tasks is None:
        return list(items)
    return [dataclasses.replace(item, annotations=tuple(a for a in item.annotations if a.task in tasks)) for item in items]


def picture_key(kind: str, items: Sequence[Item], size: int) -> str:
    parts = f"{kind}:{size}:{RENDERER_VERSION}:{fingerprint(items)}"
    return hashlib.sha256(parts.encode()).hexdigest()


def _scale(items: Sequence[Item], target: int) -> int:
    longest = max(items[0].width, items[0].height)
    return min(MAX_SCALE, max(1, target // longest))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def thumbnail(cache: PictureCache, items: Sequence[Item]) -> tuple[bytes, str]:
    """A small overlay of every annotation, and its cache key (an ETag)."""
    key = picture_key("thumbs", items, THUMBNAIL)

    def make() -> bytes:
        image = draw(items, scale=_scale(items, THUMBNAIL)).image
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        return _png(image)

    return cache.get("thumbs", key, make), key


def overlay(cache: PictureCache, items: Sequence[Item]) -> tuple[bytes, str]:
    """The full-size overlay (tiny images enlarged), and its cache key."""
    key = picture_key("overlays", items, OVERLAY_MIN)
    return cache.get("overlays", key, lambda: _png(draw(items, scale=_scale(items, OVERLAY_MIN)).image)), key
