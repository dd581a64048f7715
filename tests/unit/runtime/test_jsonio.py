"""The _json-only codec gives what the json module gives."""

from __future__ import annotations

import json

import pytest

from skiff.runtime import jsonio

SAMPLES = [
    {"a": [1, 2.5, "x", True, None], "b": {"c": 'ü\n"q"'}},
    [],
    "text",
    -12,
    {"nested": [[[]], {}], "big": 2**70},
]


@pytest.mark.parametrize("value", SAMPLES)
def test_round_trip_matches_json(value: object) -> None:
    assert jsonio.dumps(value) == json.dumps(value)
    assert jsonio.loads(json.dumps(value)) == value
    assert jsonio.loads(json.dumps(value, indent=2).encode()) == value


@pytest.mark.parametrize("bad", ["", "{", '{"a": 1} x', "[1,]", "NaN", "{'a': 1}"])
def test_malformed_raises(bad: str) -> None:
    with pytest.raises(jsonio.JSONError):
        jsonio.loads(bad)


def test_no_re_or_enum_import() -> None:
    import subprocess
    import sys

    code = "import sys, skiff.runtime.jsonio as j; j.loads('{\"a\": 1}'); j.dumps([1]); print('re' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bytes_may_start_with_a_byte_order_mark() -> None:
    assert jsonio.loads(b'\xef\xbb\xbf{"a": "\xc3\xbc"}') == {"a": "ü"}
    with pytest.raises(UnicodeDecodeError):
        jsonio.loads(b'{"a": "\xff"}')
