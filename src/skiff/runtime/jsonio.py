"""JSON for the runtime's hot path, on the C accelerator alone.

`import json` pulls in `re` and `enum` (~5 ms, a sixth of a container start). The C scanner
and encoder in `_json` need neither; this module drives them with the same settings `json`
uses (strict, no NaN surprises). Output is identical to `json.dumps(obj)` / `json.loads`.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class JSONError(ValueError):
    """Malformed JSON: `msg` and the character offset `pos`."""

    def __init__(self, msg: str, pos: int) -> None:
        super().__init__(f"{msg} (char {pos})")
        self.msg = msg
        self.pos = pos


def _constant(name: str) -> float:
    raise JSONError(f"invalid constant {name}", 0)


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)

    def __init__(self) -> None:
        self.memo: dict[str, str] = {}


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]
_WS = " \t\n\r"


def loads(text: str | bytes) -> Any:
    """Parse one JSON document; raises JSONError naming the offset."""
    if isinstance(text, bytes | bytearray):
        text = text.decode()  # utf-8; "utf-8-sig" would cost an import of its codec
        if text.startswith("\ufeff"):
            text = text[1:]
    end = len(text)
    idx = 0
    while idx < end and text[idx] in _WS:
        idx += 1
    try:
        obj, idx = _scan(text, idx)
    except StopIteration as err:
        raise JSONError("expecting value", err.value) from None
    except ValueError as err:  # json.JSONDecodeError from inside the C scanner
        raise JSONError(getattr(err, "msg", str(err)), getattr(err, "pos", 0)) from None
    while idx < end and text[idx] in _WS:
        idx += 1
    if idx != end:
        raise JSONError("extra data", idx)
    return obj


def _default(obj: object) -> object:
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


_encode_compact = _json.make_encoder(
    {}, _default, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True
)


def dumps(obj: Any) -> str:
    """Serialize like json.dumps(obj) (compact separators ', ' and ': ', ASCII)."""
    return "".join(_encode_compact(obj, 0))


def dumps_indent(obj: Any, indent: int = 2) -> str:
    """Pretty output for humans (state, spec); uses the standard module (not on a hot path)."""
    import json

    return json.dumps(obj, indent=indent)
