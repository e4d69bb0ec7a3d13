"""The scan that decides when orjson would lose an integer: its fast candidate search must
decide exactly as a plain regex over the text does (the oracle below, the scan's old form)."""

from __future__ import annotations

import json
import random
import re

import pytest

from repo.model.jsonio import _has_big_integer, parse_json

SPACE = b" \t\r\n"


def regex_oracle(text: bytes) -> bool:
    for match in re.finditer(rb"[0-9]{19,}", text):
        start, end = match.span()
        negative = start > 0 and text[start - 1] == ord("-")
        if end - start == 19 and not negative:
            continue
        before = start - negative - 1
        while before >= 0 and text[before] in SPACE:
            before -= 1
        after = end
        while after < len(text) and text[after] in SPACE:
            after += 1
        if (before < 0 or text[before] in b"[:,") and (after == len(text) or text[after] in b",]}"):
            return True
    return False


def test_the_scan_agrees_with_the_regex_on_random_texts():
    rng = random.Random(5)
    alphabet = b"0123456789 -,:[]{}\"a\n"
    for _ in range(20000):
        text = bytes(rng.choice(alphabet) if rng.random() < 0.25 else rng.randrange(48, 58)
                     for _ in range(rng.randrange(0, 70)))
        assert _has_big_integer(text) == regex_oracle(text), text


@pytest.mark.parametrize(("text", "value"), [
    (b"[18446744073709551616]", [2**64]),
    (b'{"a": -9223372036854775809}', {"a": -(2**63) - 1}),
    (b"[9223372036854775807, 1]", [2**63 - 1, 1]),
    (b'["12345678901234567890123"]', ["12345678901234567890123"]),
    (b"12345678901234567890", 12345678901234567890),
])
def test_big_integers_stay_integers(text: bytes, value):
    parsed = parse_json(text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(("text", "value"), [
    (b'["x:12345678901234567890123]", 1]', ["x:12345678901234567890123]", 1]),  # an RLE-like string
    (b'["\\":12345678901234567890123]", 1]', ['":12345678901234567890123]', 1]),
    (b'["\\\\", 12345678901234567890123]', ["\\", 12345678901234567890123]),  # a string ending in a backslash
    (b'["a", :12345678901234567890123]', None),  # invalid: refused by the standard library's parse
])
def test_digit_runs_inside_strings_need_no_slow_parse(text: bytes, value):
    if value is None:
        with pytest.raises(json.JSONDecodeError) as refused:
            parse_json(text)
        assert refused.value.msg == "Expecting value"  # the standard library's words, as before
        return
    parsed = parse_json(text)
    assert parsed == value and [type(v) for v in parsed] == [type(v) for v in value]


def test_strings_found_from_the_start_place_every_digit_run():
    """Random valid texts: a run is inside a string exactly when the oracle (the standard
    library's parse of the text with the run's first digit changed) says its value changed."""
    rng = random.Random(11)
    pieces = ['"', "\\\\", '\\"', ":", "]", "a"]
    for _ in range(2000):
        items = []
        for _ in range(rng.randrange(1, 5)):
            if rng.random() < 0.5:
                items.append("1" * rng.randrange(19, 23))
            else:
                inner = "".join(rng.choice(pieces[1:]) for _ in range(rng.randrange(3)))
                items.append('"' + inner + ":" + "1" * rng.randrange(19, 23) + "]" + '"')
        text = ("[" + ", ".join(items) + "]").encode()
        expected = json.loads(text)
        parsed = parse_json(text)
        assert parsed == expected and list(map(type, parsed)) == list(map(type, expected)), text
