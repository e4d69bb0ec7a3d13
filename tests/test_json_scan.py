"""The scan that decides when orjson would lose an integer: its fast candidate search must
decide exactly as a plain regex over the text does (the oracle below, the scan's old form)."""

from __future__ import annotations

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
