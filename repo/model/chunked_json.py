"""Reading a big JSON object a piece at a time: its small values whole, its big arrays in
windows of whole elements, so that a 600 MB COCO file never becomes 6 GB of Python objects.

A first pass scans the bytes (a block at a time, with numpy) for the structure alone: where
strings begin and end (escapes included), how deep each bracket nests, where each top-level
value lies, and inside the arrays to be windowed the ends of elements about every
WINDOW_BYTES. Each piece is then parsed by `jsonio.parse_json`, the same parse as a whole
file, so numbers and strings come out exactly as they would from it.

Windows are cut where the content says, not at byte counts: after an element whose last
bytes hash under a threshold (proportional to the element's length, so that a window holds
about WINDOW_BYTES whatever its elements' sizes), within bounds. An edit that makes one element
longer or shorter then moves no cut after the next one, and the other windows keep their bytes:
an update can tell them unchanged by their digests and leave them unread (see reader).

Every byte of the file is parsed in exactly one piece: the top-level object with each of its
container values replaced by an empty one of the same kind (`{"images": [], ...}`), each
small container whole, each window as `[element, ...]` (a window after the first keeps the
comma before its first element, and is parsed after a stand-in element, so that a missing or
extra comma fails). So the pieces parse if and only if the file does. A problem found here
raises ChunkError; the caller then reads the whole file the usual way, which refuses it with
the message it always gave.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from repo.model.jsonio import MAX_DEPTH, duplicate_key, parse_json, parsed_key_count, repeats_a_key

BLOCK_BYTES = 1 << 20  # read and scanned at a time
# About this much of a big array is parsed at a time. A window's records (~10x its bytes) then
# stay in the CPU's caches while they are checked, hashed and written (a 118,000-image import
# took 65 s with 4 MiB windows, 50 s with these), and every doubling from 128 KiB adds 5-10 MB
# to an import's peak memory.
WINDOW_BYTES = 128 << 10
# A valid record nests at most MAX_DEPTH levels inside the top-level object and its array;
# a deeper file is left to the whole-file reader (and stdlib's recursion limit never differs
# between a window and the whole file).
_DEEPEST = MAX_DEPTH + 2
# The bytes before an element's closing bracket whose hash says whether a window ends there.
_TAIL_BYTES = 32
_MIXERS = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63], dtype=np.uint64)

_QUOTE, _BACKSLASH, _OPEN_LIST, _OPEN_OBJECT, _CLOSE = 1, 2, 3, 4, 5
_KINDS = np.zeros(256, dtype=np.uint8)
_KINDS[ord('"')] = _QUOTE
_KINDS[ord("\\")] = _BACKSLASH
_KINDS[ord("[")] = _OPEN_LIST
_KINDS[ord("{")] = _OPEN_OBJECT
_KINDS[ord("]")] = _KINDS[ord("}")] = _CLOSE


class ChunkError(Exception):
    """The file is not valid JSON, or not of a shape read in pieces (its value is no object)."""


@dataclass
class Span:
    """A container value of the top-level object: bytes [start, end] (both brackets), and for a
    windowed array the positions of the closing brackets after which a window ends."""

    start: int
    end: int = -1
    is_list: bool = False
    cuts: list[int] = field(default_factory=list)
    last_end: int = -1  # of the array's last element scanned so far (its opening bracket at first)


class Window:
    """Whole elements of a windowed array: its bytes, read, and its elements, parsed when first
    asked for (an update leaves a window whose digest it knows unparsed). The text they were
    parsed from is checked for repeated keys once the elements are read (`refuse_repeated_keys`)."""

    def __init__(self, piece: bytes, first: bool):
        self.piece = piece  # the file's bytes from after the element before to the last one's end
        self._first = first
        self._elements: list[Any] | None = None

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.piece).digest()

    @functools.cached_property
    def text(self) -> bytes:
        """The piece as a JSON array; after the first window, behind a stand-in element."""
        return b"[" + self.piece + b"]" if self._first else b"[0" + self.piece + b"]"

    @property
    def elements(self) -> list[Any]:
        if self._elements is None:
            parsed = _parse_value(self.text)
            self._elements = parsed if self._first else parsed[1:]
        return self._elements

    def refuse_repeated_keys(self, keys: int | None = None) -> None:
        """Raise ChunkError if an object of the window repeats a key. `keys` is how many keys
        its elements' objects hold, if whoever read them counted (else they are counted here)."""
        if repeats_a_key(self.text, parsed_key_count(self.elements) if keys is None else keys):
            raise ChunkError("a duplicate key")


@dataclass
class ChunkedObject:
    """A scanned top-level object: `document` holds every value, except that the keys named
    in `windowed` hold an empty list whose elements `windows(key)` yields."""

    file: IO[bytes]
    document: dict[str, Any]
    spans: dict[str, Span]

    def windows(self, key: str) -> Iterator[Window]:
        """The windowed array `key`, a window of whole elements at a time; each window's
        `refuse_repeated_keys` must be called for the file to be checked whole. A window after
        the first keeps the comma before its first element, so a missing or extra one fails."""
        span = self.spans.get(key)
        if span is None:
            return
        bounds = [span.start + 1, *(cut + 1 for cut in span.cuts), span.end]
        for index, (start, end) in enumerate(zip(bounds, bounds[1:])):
            yield Window(_read(self.file, start, end), not index)

    def frame_digest(self, key: str) -> bytes:
        """The digest of every byte of the file but those of the windowed array `key`'s
        elements: equal for two files that differ only in that array's windows."""
        span = self.spans[key]
        hashed = hashlib.sha256()
        _hash_bytes(self.file, hashed, 0, span.start + 1)
        _hash_bytes(self.file, hashed, span.end, self.file.seek(0, os.SEEK_END))
        return hashed.digest()


def read_chunked(file: IO[bytes], windowed: frozenset[str]) -> ChunkedObject:
    """Scan `file` (a JSON object, maybe after a UTF-8 byte order mark) and parse all but the
    top-level arrays named in `windowed`."""
    head = file.read(3)
    offset = 3 if head == b"\xef\xbb\xbf" else 0
    spans = _scan(file, offset)
    skeleton = bytearray()
    previous = offset
    for span in spans:
        skeleton += _read(file, previous, span.start)
        skeleton += b"[]" if span.is_list else b"{}"
        previous = span.end + 1
    skeleton += _read(file, previous, None)
    document = _parse(bytes(skeleton))
    if not isinstance(document, dict):
        raise ChunkError("the top-level value is not an object")
    containers = [key for key, value in document.items() if isinstance(value, (dict, list))]
    if len(containers) != len(spans):
        raise ChunkError("the scan and the parse disagree")  # cannot happen for valid JSON
    kept: dict[str, Span] = {}
    for key, span in zip(containers, spans):
        if key in windowed and span.is_list:
            kept[key] = span
        else:
            document[key] = _parse(_read(file, span.start, span.end + 1))
    return ChunkedObject(file, document, kept)


def _hash_bytes(file: IO[bytes], hashed: Any, start: int, end: int) -> None:
    """Feed bytes [start, end) of `file` to `hashed`, a block at a time."""
    file.seek(start)
    while start < end and (block := file.read(min(BLOCK_BYTES, end - start))):
        hashed.update(block)
        start += len(block)


def _read(file: IO[bytes], start: int, end: int | None) -> bytes:
    file.seek(start)
    return file.read() if end is None else file.read(end - start)


def _parse(text: bytes) -> Any:
    value = _parse_value(text)
    if duplicate_key(text, value) is not None:
        raise ChunkError("a duplicate key")
    return value


def _parse_value(text: bytes) -> Any:
    try:
        return parse_json(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ChunkError(str(exc)) from None


def _scan(file: IO[bytes], offset: int) -> list[Span]:
    """The container values of the top-level object, with window cuts in its arrays.

    Per block, only the bytes that matter (quotes, backslashes, brackets) are looked at: a
    backslash escapes the byte after it unless itself escaped; a bracket counts when an even
    number of unescaped quotes precedes it; depth is a running sum of +1 and -1."""
    spans: list[Span] = []
    depth, in_string, escape_next = 0, 0, False
    base = offset
    tail = np.zeros(_TAIL_BYTES, dtype=np.uint8)  # the bytes before the block, for the tail hashes
    file.seek(offset)
    while block := file.read(BLOCK_BYTES):
        data = np.frombuffer(block, dtype=np.uint8)
        with_tail = np.concatenate([tail, data])
        tail = with_tail[-_TAIL_BYTES:]
        places = np.flatnonzero(_KINDS[data])
        kinds = _KINDS[data[places]]
        backslashes = places[kinds == _BACKSLASH]
        if escape_next or len(backslashes):
            escaped, escape_next = _escaped(backslashes.tolist(), escape_next, len(block))
            keep = kinds != _BACKSLASH
            if escaped:
                keep &= ~np.isin(places, np.fromiter(escaped, dtype=places.dtype))
            places, kinds = places[keep], kinds[keep]
        quotes = kinds == _QUOTE
        parity = (np.cumsum(quotes) + in_string) & 1
        if len(parity):
            in_string = int(parity[-1])
        structural = ~quotes & (parity == 0)
        places, kinds = places[structural] + base, kinds[structural]
        steps = np.where(kinds == _CLOSE, -1, 1)
        after = depth + np.cumsum(steps)
        if len(after):
            if after.min() < 0 or after.max() > _DEEPEST:
                raise ChunkError("a bracket closes nothing, or they nest too deep")
            depth = int(after[-1])
        _record(spans, places, kinds, after - steps, after, with_tail, base - _TAIL_BYTES)
        base += len(block)
    if depth or in_string:
        raise ChunkError("the text ends inside a value")
    if spans and spans[-1].end < 0:
        raise ChunkError("the text ends inside a value")
    return spans


def _escaped(backslashes: list[int], escape_first: bool, size: int) -> tuple[set[int], bool]:
    """The places in a block that a backslash escapes, and whether the next block's first
    byte is escaped."""
    escaped = {0} if escape_first else set()
    for place in backslashes:
        if place not in escaped:
            escaped.add(place + 1)
    return escaped, size in escaped


def _record(spans: list[Span], places: Any, kinds: Any, before: Any, after: Any, text: Any, text_start: int) -> None:
    """Note the top-level values that open or close among these brackets, and the window cuts
    among the element ends (closing brackets back at depth 2) of the array open meanwhile.
    `text` holds the file's bytes from `text_start` to the block's end."""
    opens = np.flatnonzero((kinds != _CLOSE) & (before == 1))
    closes = np.flatnonzero((kinds == _CLOSE) & (after == 1))
    ends = places[(kinds == _CLOSE) & (after == 2)]
    marks = _tail_hashes(text, ends - text_start)
    events = sorted([(index, True) for index in opens.tolist()] + [(index, False) for index in closes.tolist()])
    done = 0  # ends before this index of `ends` are dealt with
    for index, opening in events:
        place = int(places[index])
        upto = int(np.searchsorted(ends, place))
        _cut(spans, ends[done:upto], marks[done:upto])
        done = upto
        if opening:
            spans.append(Span(place, is_list=bool(kinds[index] == _OPEN_LIST), last_end=place))
        else:
            spans[-1].end = place
    _cut(spans, ends[done:], marks[done:])


def _tail_hashes(text: Any, ends: Any) -> Any:
    """A 32-bit hash of the _TAIL_BYTES bytes before each place of `ends` in `text`."""
    tails = text[ends[:, None] + np.arange(-_TAIL_BYTES, 0)]
    words = np.ascontiguousarray(tails).view(np.uint64) * _MIXERS
    mixed = np.bitwise_xor.reduce(words, axis=1) if len(ends) else np.zeros(0, dtype=np.uint64)
    mixed ^= mixed >> np.uint64(29)
    mixed *= _MIXERS[0]
    return mixed >> np.uint64(32)


def _cut(spans: list[Span], ends: Any, marks: Any) -> None:
    """Choose window cuts among element ends of the open array, as FastCDC does: from half a
    window on, at the first end whose tail hash falls under a small share of its element's
    length; from a whole window on, under a large share; at twice a window, at the first end."""
    if not len(ends) or not spans or spans[-1].end >= 0 or not spans[-1].is_list:
        return
    span = spans[-1]
    lengths = np.diff(ends, prepend=span.last_end).astype(np.uint64)
    span.last_end = int(ends[-1])
    per_byte = (1 << 32) // WINDOW_BYTES
    rare = ends[marks < lengths * np.uint64(per_byte)]  # about once in a window's bytes
    common = ends[marks < lengths * np.uint64(per_byte * 4)]  # about once in a quarter window's
    last = span.cuts[-1] if span.cuts else span.start
    while True:
        half, whole, double = last + WINDOW_BYTES // 2, last + WINDOW_BYTES, last + 2 * WINDOW_BYTES
        early = rare[np.searchsorted(rare, half):np.searchsorted(rare, whole)]
        late = common[np.searchsorted(common, whole):]
        forced = ends[np.searchsorted(ends, double):]
        if len(early):
            last = int(early[0])
        elif len(late) and (not len(forced) or late[0] <= forced[0]):
            last = int(late[0])
        elif len(forced):
            last = int(forced[0])
        else:
            return
        span.cuts.append(last)
