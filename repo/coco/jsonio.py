"""Reading and writing JSON without losing a value.

orjson is several times faster than the standard library on COCO-sized files, but it turns
integers beyond 64 bits into floats. Such integers are rare (we refuse them as ids), yet a
lossless store must keep them where they appear in free-form fields, so a file holding a run of
20 or more digits is parsed by the standard library instead. NaN and Infinity are not JSON;
both parsers refuse them here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import IO, Any

import orjson

from repo.errors import InputError

_LONG_DIGIT_RUN = re.compile(r"\d{20,}")
_LONG_DIGIT_RUN_BYTES = re.compile(rb"\d{20,}")


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


def parse_json(text: str | bytes) -> Any:
    """Parse JSON text exactly: big integers stay integers, NaN/Infinity are refused."""
    pattern = _LONG_DIGIT_RUN_BYTES if isinstance(text, bytes) else _LONG_DIGIT_RUN
    if pattern.search(text):
        return json.loads(text, parse_constant=_refuse_constant)
    return orjson.loads(text)


def load_json_file(path: Path, shown_as: str) -> Any:
    """Read a whole JSON file; any problem becomes an InputError naming `shown_as`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(shown_as, None, None, "file not found") from None
    except IsADirectoryError:
        raise InputError(shown_as, None, None, "a folder, expected a JSON file") from None
    except OSError as exc:
        raise InputError(shown_as, None, None, f"cannot be read ({exc.strerror})") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            shown_as, None, None, f"not UTF-8 text (byte {exc.start} is invalid)"
        ) from None
    if not text.strip():
        raise InputError(shown_as, None, None, "empty file, expected a JSON object")
    try:
        return parse_json(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            shown_as, None, None,
            f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
        ) from None


def dumps(value: Any) -> bytes:
    """Serialize compactly; what orjson refuses (integers beyond 64 bits, lone surrogates from
    `\\udXXX` escapes) takes the slow path."""
    try:
        return orjson.dumps(value)
    except TypeError:  # ASCII escapes also carry lone surrogates, which UTF-8 cannot
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def dumps_text(value: Any) -> str:
    return dumps(value).decode("utf-8")


class ObjectStreamWriter:
    """Writes one top-level JSON object whose big lists are fed one element at a time."""

    def __init__(self, out: IO[bytes]):
        self._out = out
        self._keys = 0

    def begin(self) -> None:
        self._out.write(b"{")

    def value(self, key: str, value: Any) -> None:
        self._key(key)
        self._out.write(dumps(value))

    def array(self, key: str, elements: Any) -> int:
        """Write `key: [...]` from an iterable of JSON-ready values; returns how many."""
        self._key(key)
        out = self._out
        out.write(b"[")
        count = 0
        for element in elements:
            if count:
                out.write(b",")
            out.write(dumps(element))
            count += 1
        out.write(b"]")
        return count

    def end(self) -> None:
        self._out.write(b"}\n")

    def _key(self, key: str) -> None:
        if self._keys:
            self._out.write(b",")
        self._out.write(dumps(key) + b":")
        self._keys += 1
