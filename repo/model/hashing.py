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
from hashlib import blake2b
from collections.abc import Iterable
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


def record_hashes(values: list[Any]) -> list[bytes] | None:
    """`record_hash` of each of a list of objects, in one comprehension of C calls (no Python
    call per object). None when a value is no object, or needs `record_hash`'s slow path
    (integers beyond 64 bits, deep nesting). Writing the whole list in one call and cutting it
    at markers was tried: slower for every kind of record (and 3x at 100,000s of objects)."""
    if not _objects_only(map(type, values)):
        return None
    try:
        return [blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS), digest_size=16).digest() for value in values]
    except TypeError:
        return None


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
