"""Reading and writing JSON without losing a value: the codec of files and of stored JSON.

orjson does the work; where it would lose a value (integers beyond 64 bits, nesting beyond
what it writes) the standard library takes over, and both refuse exactly the same inputs.
The cases and why are in docs/edge-cases.md ("JSON values").
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from repo.errors import InputError

# Where orjson would turn an integer into a float: 2^64 has 20 digits, -2^63-1 has 19. Only
# integer tokens count: digit runs inside strings, which compressed RLE counts are full of,
# must not send most real files down the slow path (`_has_big_integer` looks at each run's
# neighbours; a string that merely looks like such a token only costs speed).
_SPACE = b" \t\r\n"
_DIGIT_MARKS = bytes(49 if 48 <= byte <= 57 else 48 for byte in range(256))  # digits -> "1", else "0"
_LONG_RUN = b"1" * 19
# A `\\uD800`-`\\uDFFF` escape (a surrogate), not itself preceded by an escaping backslash.
_SURROGATE_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_HINT = re.compile(r"\\u[dD][89a-fA-F]")

MAX_DEPTH = 254  # levels of lists and objects that orjson writes


def parse_json(text: str | bytes) -> Any:
    """Parse JSON text exactly: big integers stay integers; what orjson refuses is refused."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    if not _has_big_integer(data):
        return orjson.loads(data)
    if _in_strings_only(data):
        try:  # a valid text, so its strings were found right: no integer token is big
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # an invalid one: the slow parse names its problem, as it always did
    return _parse_slowly(data.decode("utf-8"))


def _has_big_integer(text: bytes) -> bool:
    """Does an integer token (or a string that looks like one) lie outside what orjson keeps
    as an integer?"""
    return next(_big_integer_candidates(text), None) is not None


def _big_integer_candidates(text: bytes) -> Iterator[int]:
    """Where a digit run starts that would be an integer token too big for orjson, if it stood
    outside strings (only its neighbours are looked at).

    Candidates are found on a copy with every digit mapped to 1 and everything else to 0: one
    C-speed `find` of 19 ones skips the long stretches a regex would try byte by byte.
    """
    marked = text.translate(_DIGIT_MARKS)
    position = 0
    while (position := marked.find(_LONG_RUN, position)) >= 0:
        start, end = position, marked.find(b"0", position)
        if end < 0:
            end = len(text)
        position = end
        negative = start > 0 and text[start - 1] == ord("-")
        if end - start == 19 and not negative:
            continue
        before = start - negative - 1
        while before >= 0 and text[before] in _SPACE:
            before -= 1
        after = end
        while after < len(text) and text[after] in _SPACE:
            after += 1
        if (before < 0 or text[before] in b"[:,") and (after == len(text) or text[after] in b",]}"):
            yield start


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _in_strings_only(text: bytes) -> bool:
    """Whether every big-integer candidate of the text lies inside a string, were the text
    valid JSON (compressed RLE strings hold digit runs between ':' and ']'): none is left once
    each string, matched one after another from the text's start, is emptied."""
    return next(_big_integer_candidates(_STRING.sub(b'""', text)), None) is None


def _parse_slowly(text: str) -> Any:
    """The standard library's parse, refusing what orjson refuses (see docs/edge-cases.md)."""

    def refuse(problem: str, literal: str) -> Any:
        raise json.JSONDecodeError(problem, text, max(text.find(literal), 0))

    def constant(name: str) -> Any:
        return refuse(f"{name} is not valid JSON", name)

    def finite(literal: str) -> float:
        value = float(literal)
        return value if math.isfinite(value) else refuse(f"the number {literal} is too large for a double", literal)

    try:
        value = json.loads(text, parse_constant=constant, parse_float=finite)
    except RecursionError:
        raise json.JSONDecodeError("lists and objects nested too deeply", text, 0) from None
    position = _lone_surrogate(text)
    if position is not None:
        raise json.JSONDecodeError(
            f"{text[position:position + 6]} is half of a surrogate pair without its other half", text, position
        )
    return value


def _lone_surrogate(text: str) -> int | None:
    """Where the first surrogate escape stands that is not half of a high-low pair, or None."""
    if not _SURROGATE_HINT.search(text):
        return None
    pending: int | None = None  # position of a high surrogate escape awaiting its low half
    for match in _SURROGATE_ESCAPE.finditer(text):
        at = match.end() - 6
        high = match.group()[-3] in "89abAB"
        if pending is not None:
            if high or at != match.start() or at != pending + 6:
                return pending
            pending = None
        elif high:
            pending = at
        else:
            return at
    return pending


def duplicate_key(
    data: bytes, parsed: Any, counted: dict[int, int] | None = None
) -> tuple[str, str | None] | None:
    """Where an object of the JSON text `data` (already parsed as `parsed`) repeats a key:
    (the object's place, the key), or None. Parsers disagree on which value such a key has
    (most keep the last, some the first), so dsrepo refuses it rather than guess.

    Counting is cheap: the keys of the text against the keys of the parsed objects (each
    distinct), equal only when no key repeats. The text's keys are first counted in C, never
    too few; when that count is high (a string holding `":`, as compressed RLE strings
    beginning with ':' do), they are counted exactly, string by string. Only a real repeat
    has the text parsed again, slowly, to find the object.

    `counted` gives the keys of some values of a top-level object (by `id`), counted exactly
    by whoever read them (the COCO reader counts its records' keys as it checks them)."""
    if counted and type(parsed) is dict:
        values = list(parsed.values())
        keys = len(parsed) + sum(counted[id(value)] for value in values if id(value) in counted)
        keys += parsed_key_count([value for value in values if id(value) not in counted])
    else:
        keys = parsed_key_count(parsed)
    if not repeats_a_key(data, keys):
        return None
    repeated: list[tuple[str, dict[str, Any]]] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs) and not repeated:
            seen: set[str] = set()
            key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
            repeated.append((key, obj))
        return obj

    try:
        document = json.loads(data.decode("utf-8"), object_pairs_hook=pairs_hook)
    except (ValueError, RecursionError):  # refused by the standard library (orjson was not)
        return "an object", None
    if not repeated:
        return None
    key, obj = repeated[0]
    return _place_of(document, obj, key), key


def repeats_a_key(data: bytes, keys: int) -> bool:
    """Whether the JSON text `data`, whose parsed objects hold `keys` distinct keys in all,
    repeats a key."""
    return _text_key_count(data) != keys and _exact_text_key_count(data) != keys


_SPACED_KEY_END = re.compile(rb'"[ \t\r\n]+:')


def _text_key_count(data: bytes) -> int:
    """At least the number of keys in a JSON text, counted in C: a key ends with `"`, maybe
    spaces, and `:`. A string holding `\\":`, or beginning with `:`, adds one; so the count
    equals the keys of the parsed objects only when no key is repeated."""
    return data.count(b'":') + len(_SPACED_KEY_END.findall(data))


# Every string of a valid JSON text, escapes and all, then (captured) the colon that makes it
# a key. Matching string after string from the text's start, a match never begins inside a
# string: outside strings a quote only ever opens one.
_STRING_MAYBE_KEY = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"(?:[ \t\r\n]*(:))?', re.DOTALL)


def _exact_text_key_count(data: bytes) -> int:
    """The number of keys in a valid JSON text, repeats included (a few times slower than
    `_text_key_count`)."""
    return _STRING_MAYBE_KEY.findall(data).count(b":")


_SCALARS = frozenset({int, float, str, bool, type(None)})


def parsed_key_count(value: Any) -> int:
    """The keys of every object in a parsed value; lists of scalars (coordinates, most of a
    COCO file) are passed over in C."""
    count = 0
    stack = [value] if type(value) is dict or type(value) is list else []
    scalars_only = _SCALARS.issuperset
    while stack:
        item = stack.pop()
        if type(item) is dict:
            count += len(item)
            children: Any = item.values()
        else:
            children = item
        if scalars_only(map(type, children)):
            continue
        for child in children:
            kind = type(child)
            if kind is dict:
                stack.append(child)
            elif kind is list:
                try:
                    sum(child)  # numbers alone sum: three times faster than looking at their types
                except (TypeError, OverflowError):
                    if not scalars_only(map(type, child)):
                        stack.append(child)
    return count


def _place_of(document: Any, target: dict[str, Any], key: str) -> str:
    """How a message names the object `target` inside `document`: the top-level record that
    holds it (`annotations[3] (id 7)`; no id when `id` is the repeated `key`), or "the
    top-level object"."""
    if target is document or not isinstance(document, dict):
        return "the top-level object"
    for section, value in document.items():
        if value is target:
            return f"'{section}'"
        if isinstance(value, list):
            for index, element in enumerate(value):
                if _holds(element, target):
                    has_id = isinstance(element, dict) and "id" in element and not isinstance(element["id"], (dict, list))
                    has_id = has_id and not (element is target and key == "id")
                    return f"{section}[{index}]" + (f" (id {element['id']})" if has_id else "")
        if _holds(value, target):
            return f"'{section}'"
    return "an object"


def _holds(value: Any, target: dict[str, Any]) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if item is target:
            return True
        if isinstance(item, dict):
            stack.extend(child for child in item.values() if isinstance(child, (dict, list)))
        elif isinstance(item, list):
            stack.extend(child for child in item if isinstance(child, (dict, list)))
    return False


def nesting_depth(value: Any) -> int:
    """How many levels of lists and objects a value nests (0 for a scalar), without recursing:
    the values to measure are the ones too deep to recurse into."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def load_json_file(path: Path, shown_as: str) -> Any:
    """Read a whole JSON file; any problem becomes an InputError naming `shown_as`."""
    data, document = parse_json_file(path, shown_as)
    refuse_duplicate_key(data, document, shown_as)
    return document


def parse_json_file(path: Path, shown_as: str) -> tuple[bytes, Any]:
    """A JSON file's text and value, not yet checked for duplicate keys (`refuse_duplicate_key`
    must follow, before any other problem of the value is reported)."""
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
        return data, parse_json(data)
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        raise _unparsable(data, shown_as, problem) from None
    except UnicodeDecodeError:  # from the standard library's parse, taking over for big integers
        raise _unparsable(data, shown_as, "not UTF-8 text") from None


def refuse_duplicate_key(data: bytes, document: Any, shown_as: str, counted: dict[int, int] | None = None) -> None:
    """Raise an InputError naming the first repeated key of the text `data` (see duplicate_key)."""
    repeated = duplicate_key(data, document, counted)
    if repeated is not None:
        place, key = repeated
        raise InputError(
            shown_as, place, key,
            "duplicate key: the object holds it twice, and JSON readers disagree on which value counts",
        )


def _unparsable(data: bytes, shown_as: str, problem: str) -> InputError:
    """Why a text does not parse, in this order: not UTF-8 (naming the bad byte, which orjson's
    message does not), empty, else `problem`. Only asked once parsing failed: orjson refuses
    any text that is not UTF-8, so a text that parses needs no decoding of its own."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return InputError(shown_as, None, None, f"not UTF-8 text (byte {bad.start} is invalid)")
    if not data.strip():
        return InputError(shown_as, None, None, "empty file, expected a JSON object")
    return InputError(shown_as, None, None, problem)


def dumps(value: Any) -> bytes:
    """Serialize compactly; what orjson refuses (integers beyond 64 bits, lone surrogates from
    `\\udXXX` escapes) takes the slow path. The value may hold orjson Fragments (stored JSON
    copied as it is), which both paths write as they are."""
    try:
        return orjson.dumps(value)
    except TypeError:
        pass
    try:
        return orjson.dumps(_refused_as_fragments(value))
    except TypeError:  # a key orjson cannot write: ASCII escapes also carry lone surrogates
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def _refused_as_fragments(value: Any) -> Any:
    """The value with each integer or string orjson refuses replaced by the standard library's
    text for it, as a Fragment."""
    if isinstance(value, dict):
        return {key: _refused_as_fragments(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_refused_as_fragments(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return orjson.Fragment(str(value))
    if isinstance(value, str) and not _utf8_encodable(value):
        return orjson.Fragment(json.dumps(value))
    return value


def _utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def dumps_text(value: Any) -> str:
    return dumps(value).decode("utf-8")


def describe(value: Any) -> str:
    """How a message names a JSON value: its type, and the value when it is short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {dumps(shown).decode()}"
    if isinstance(value, list):
        return f"a list of {len(value)} values"
    return "an object"


WRITE_BATCH = 1000  # array elements joined into one write


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
        """Write `key: [...]` from an iterable of JSON-ready values, WRITE_BATCH elements per
        write; returns how many."""
        self._key(key)
        out = self._out
        out.write(b"[")
        count = 0
        batch: list[bytes] = []
        for element in elements:
            batch.append(dumps(element))
            if len(batch) == WRITE_BATCH:
                out.write((b"," if count else b"") + b",".join(batch))
                count += len(batch)
                batch = []
        if batch:
            out.write((b"," if count else b"") + b",".join(batch))
            count += len(batch)
        out.write(b"]")
        return count

    def end(self) -> None:
        self._out.write(b"}\n")

    def _key(self, key: str) -> None:
        if self._keys:
            self._out.write(b",")
        self._out.write(dumps(key) + b":")
        self._keys += 1
