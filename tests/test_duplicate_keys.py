"""Duplicate keys in a JSON file: JSON parsers disagree on which value counts (most keep the
last, some the first), so dsrepo refuses the file with one line naming the file, the record
and the key, on either database, and the database is left as it was."""

from __future__ import annotations

import json
import random
import shutil
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from helpers import DATA, database_contents, load_json
from repo.cli import main
from repo.model import jsonio
from repo.model.jsonio import duplicate_key

INSTANCES = DATA / "datumaro_coco" / "coco_instances"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result) -> None:
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr


def test_duplicate_json_keys_are_refused(backend, tmp_path):
    """JSON parsers disagree on duplicate keys (most keep the last): refused with one line
    naming the file, the record and the key."""
    dataset = tmp_path / "coco"
    shutil.copytree(INSTANCES, dataset)
    path = dataset / "annotations" / "instances_val.json"
    document = load_json(path)
    first = document["annotations"][0]
    raw = json.dumps(document).replace(f'"id": {first["id"]}, "image_id"', f'"id": {first["id"]}, "id": 99, "image_id"', 1)
    assert raw.count('"id": 99') == 1
    path.write_text(raw)
    project = backend.create()
    before = database_contents(project)
    result = invoke("import", "-p", project.directory, "-f", "coco", "-n", "dup", dataset)
    assert_one_line_error(result)
    assert "instances_val.json" in result.stderr and "'id'" in result.stderr and "duplicate" in result.stderr
    assert ": annotations[0]: field 'id'" in result.stderr  # no id shown: which one would it be?
    assert database_contents(project) == before


def test_a_duplicate_key_in_a_nested_object_or_pretty_printed_file_is_refused(backend, tmp_path):
    """Also one level down (the RLE of a segmentation), in a file laid out with spaces
    before the colons, as `update` reads it too."""
    dataset = tmp_path / "coco"
    shutil.copytree(INSTANCES, dataset)
    path = dataset / "annotations" / "instances_train.json"
    document = load_json(path)
    document["annotations"][-1]["segmentation"] = {"size": [10, 10], "counts": "0", "__dup__": 1}
    raw = json.dumps(document, indent=2, separators=(", ", " : ")).replace('"__dup__"', '"size"')
    path.write_text(raw)
    project = backend.create()
    invoke_ok = invoke("import", "-p", project.directory, "-f", "coco", "-n", "src", INSTANCES)
    assert invoke_ok.exit_code == 0, invoke_ok.stderr
    before = database_contents(project)
    result = invoke("update", "-p", project.directory, "src", dataset)
    assert_one_line_error(result)
    last = document["annotations"][-1]
    assert f"annotations[{len(document['annotations']) - 1}] (id {last['id']})" in result.stderr
    assert "'size'" in result.stderr and "instances_train.json" in result.stderr
    assert database_contents(project) == before


@pytest.mark.parametrize("text", [
    b'{"a": "\\": no key here", "b": 1}',  # a string holding an escaped quote and a colon
    b'{"a\\\\": 1, "a\\\\b": 2}',  # keys ending in, or holding, a backslash
    b'{"a" :1, "b"\n:\t2, "c": {"a": 1}}',  # spaces before colons
])
def test_files_without_duplicate_keys_pass(text):
    """The fast count of a text's keys may be high, never a reason to refuse a good file."""
    assert duplicate_key(text, orjson.loads(text)) is None


@pytest.mark.parametrize(("text", "place", "key"), [
    (b'{"a": 1, "a" : 2}', "the top-level object", "a"),
    (b'{"images": [{"id": 7, "f": {"k": 1, "k": 2}}]}', "images[0] (id 7)", "k"),
    (b'{"info": {"x": "\\":", "x": 2}}', "'info'", "x"),
])
def test_duplicate_keys_are_found_where_they_are(text, place, key):
    assert duplicate_key(text, orjson.loads(text)) == (place, key)


# Generated texts: keys and string values drawn from the characters that fool a count of `":`
# (colons, quotes written as `\"` or `\u0022`, backslashes, spaces), objects nested in objects
# and lists, spaces around every colon, and sometimes a key written twice. The oracle is the
# standard library's parse with a hook that sees every key of every object.
_PIECES = ["a", ":", '\\"', "\\u0022", "\\\\", " ", "\\u003a", "{", "[", ",", "\\n"]


def _string(rng: random.Random) -> str:
    return '"' + "".join(rng.choice(_PIECES) for _ in range(rng.randrange(4))) + '"'


def _space(rng: random.Random) -> str:
    return rng.choice(["", "", " ", "\n\t ", "\r\n"])


def _value(rng: random.Random, depth: int) -> str:
    kind = rng.randrange(5 if depth < 3 else 3)
    if kind == 0:
        return str(rng.choice([0, -1.5, 7]))
    if kind in (1, 2):
        return _string(rng) if kind == 1 else '":' + _string(rng)[1:]  # a value beginning with ':'
    if kind == 3:
        return "[" + ",".join(_space(rng) + _value(rng, depth + 1) for _ in range(rng.randrange(3))) + "]"
    return _object(rng, depth + 1)


def _object(rng: random.Random, depth: int) -> str:
    keys = [_string(rng) for _ in range(rng.randrange(4))]
    if keys and rng.random() < 0.2:
        keys.insert(rng.randrange(len(keys) + 1), rng.choice(keys))  # maybe repeated (or equal by escape)
    members = (_space(rng) + key + _space(rng) + ":" + _space(rng) + _value(rng, depth) for key in keys)
    return "{" + ",".join(members) + _space(rng) + "}"


def _oracle(text: bytes) -> tuple[int, bool]:
    """The keys of every object in the text, and whether an object repeats one."""
    pairs_seen = [0]
    repeated = [False]

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        pairs_seen[0] += len(pairs)
        repeated[0] |= len({key for key, _ in pairs}) != len(pairs)
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return pairs_seen[0], repeated[0]


@pytest.mark.parametrize("seed", range(20))
def test_generated_texts_have_their_repeated_keys_found(seed):
    """Never a repeat missed, never a good text refused; the exact count of a text's keys is
    the oracle's, and the fast count is never below it."""
    rng = random.Random(seed)
    repeats = 0
    for _ in range(300):
        text = _object(rng, 0).encode()
        if rng.random() < 0.3:
            text = b'{"images": [' + text + b", " + text + b'], "x": ' + text + b"}"
        keys, repeated = _oracle(text)
        parsed = orjson.loads(text)
        assert jsonio._exact_text_key_count(text) == keys, text
        assert jsonio._text_key_count(text) >= keys, text
        found = duplicate_key(text, parsed)
        assert (found is not None) == repeated, text
        repeats += repeated
    assert repeats > 20  # the texts did hold repeats


def test_string_values_beginning_with_a_colon_are_counted_exactly():
    """Compressed RLE strings often begin with ':'; their files are not parsed a second time."""
    text = b'{"counts":":Xa1","b":[":",{"k" : ":\\":"}],"c\\":":1}'
    assert jsonio._text_key_count(text) > 4
    assert jsonio._exact_text_key_count(text) == 4
    assert duplicate_key(text, orjson.loads(text)) is None
