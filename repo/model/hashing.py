"""Content hashes: how dsrepo tells that a record changed without reading it whole.

Every versioned row carries a digest of its record's content (key order aside), computed when
the record is read from a file. An update or a diff compares digests, never whole rows; two
records with the same digest are the same record. The digest of a record is the digest of the
JSON object it was read from, so re-reading an unchanged file gives the same digests, whatever
the parser's key order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import partial
from itertools import chain, repeat
from operator import methodcaller
from typing import Any

import orjson

from repo.model.jsonio import MAX_DEPTH, nesting_depth


class NestingError(ValueError):
    """A value nests deeper than MAX_DEPTH: the standard library's writer might run out of stack."""


def record_hash(value: Any) -> bytes:
    """A digest of a JSON value's content, key order aside: rows with equal digests are equal."""
    try:
        canonical = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits, or nesting deeper than orjson writes
        if nesting_depth(value) > MAX_DEPTH:
            raise NestingError(f"lists and objects nest more than {MAX_DEPTH} levels deep") from None
        canonical = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(canonical, digest_size=16).digest()


_objects_only = frozenset({dict}).issuperset
_hasher = partial(hashlib.blake2b, digest_size=16)
_digest = methodcaller("digest")
# Between the objects of a list written at once: a string holding no brace, so the text of an
# object (from its `{` to its `}`) holds the marker between two objects only where it was put,
# or whole inside an object, which then shows as one cut too many.
_BETWEEN = "\x00record\x00"
_SPLIT = b',"\\u0000record\\u0000",'
_END = b',"\\u0000record\\u0000"]'


def record_hashes(values: list[Any]) -> list[bytes] | None:
    """`record_hash` of each of a list of objects, without a Python call per object: they are
    written by one call, with a marker after each, and the text cut at the markers gives each
    object's text as `record_hash` writes it. None when a value is no object, or needs
    `record_hash`'s slow path (integers beyond 64 bits, deep nesting)."""
    if not _objects_only(map(type, values)):
        return None
    try:
        text = orjson.dumps(list(chain.from_iterable(zip(values, repeat(_BETWEEN)))), option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    texts = text[1:-len(_END)].split(_SPLIT) if values else []
    if len(texts) != len(values):
        texts = [orjson.dumps(value, option=orjson.OPT_SORT_KEYS) for value in values]
    return list(map(_digest, map(_hasher, texts)))


def segment_hash(record_digest: bytes, rle: bytes) -> bytes:
    """The digest of a panoptic segment: its `segments_info` record and its pixels together
    (the compressed RLE cut from the PNG), so that repainting a segment changes its digest."""
    return record_hash([record_digest.hex(), rle.decode("ascii")])


def segments_fingerprint(segments: Iterable[tuple[int, bytes]]) -> bytes:
    """The digest of the pixels of a panoptic PNG as (segment id, compressed RLE) pairs, in any
    order: equal fingerprints paint the same id map, so a kept PNG with the fingerprint of the
    segments an export writes is that export's PNG, byte for byte."""
    digest = hashlib.blake2b(digest_size=16)
    for segment_id, rle in sorted(segments):
        digest.update(b"%d:%d:" % (segment_id, len(rle)))
        digest.update(rle)
    return digest.digest()


def too_deep(value: Any) -> bool:
    """Whether a value nests deeper than MAX_DEPTH (orjson tries first: it is fast, and fails
    only on such values and on integers beyond 64 bits)."""
    try:
        orjson.dumps(value)
    except TypeError:
        return nesting_depth(value) > MAX_DEPTH
    return False
