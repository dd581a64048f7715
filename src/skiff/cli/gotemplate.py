"""A subset of Go's text/template, enough for docker's `--format` strings.

Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming; field chains (`.State.Status`,
`$.Name`, `$v.Key`); method calls with arguments (`.Label "com.example"`); pipelines with `|`;
parenthesised pipelines; string/raw-string/number/bool literals; `if`/`else if`/`else`, `range`
(with `$i, $v :=`), `with`, `end`; variables; docker's functions (json, join, split, title, lower,
upper, pad, truncate, println) and Go's builtins (index, len, printf, print, eq, ne, lt, le, gt,
ge, and, or, not, slice). Values print as Go's `%v` would: maps as `map[k:v]`, lists as `[a b]`,
a missing map key as `<no value>`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from skiff.errors import InvalidArgument

NO_VALUE = "<no value>"


class TemplateError(InvalidArgument):
    pass


# -- lexing ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<char>'(?:[^'\\]|\\.)')
    | (?P<decl>:=|=)
    | (?P<pipe>\|)
    | (?P<lp>\()
    | (?P<rp>\))
    | (?P<comma>,)
    | (?P<var>\$[A-Za-z0-9_]*)
    | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
    | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def _tokens(src: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    src = src.rstrip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"template: unexpected {src[pos:].strip()[:20]!r} in action")
        kind = m.lastgroup
        assert kind is not None
        text = m.group(kind)
        # a field chain may follow a variable or a parenthesis directly: `$v.Name`, `(x).Y`
        out.append((kind, text))
        pos = m.end()
    return out


# -- parse tree -----------------------------------------------------------------------------


class Node:
    pass


class Text(Node):
    def __init__(self, text: str) -> None:
        self.text = text


class Action(Node):
    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe


class Pipeline:
    def __init__(self, decl: list[str], cmds: list[list[Any]]) -> None:
        self.decl = decl
        self.cmds = cmds  # each command: a list of operands (tuples)


class Block(Node):
    def __init__(self, kind: str, pipe: Pipeline, body: list[Node], else_body: list[Node]) -> None:
        self.kind = kind  # if, range, with
        self.pipe = pipe
        self.body = body
        self.else_body = else_body


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)


def _split(src: str) -> list[tuple[str, str]]:
    """Split into ("text", s) and ("action", s) honoring trim markers."""
    parts: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(src):
        text = src[pos : m.start()]
        if m.group(1):
            text = text.rstrip()
        if parts and parts[-1][0] == "trim":
            parts.pop()
            text = text.lstrip()
        if text:
            parts.append(("text", text))
        parts.append(("action", m.group(2).strip()))
        if m.group(3):
            parts.append(("trim", ""))
        pos = m.end()
    tail = src[pos:]
    if parts and parts[-1][0] == "trim":
        parts.pop()
        tail = tail.lstrip()
    if "{{" in tail:
        raise TemplateError("template: unclosed action")
    if tail:
        parts.append(("text", tail))
    return parts


class _Parser:
    def __init__(self, src: str) -> None:
        self.parts = _split(src)
        self.i = 0

    def parse(self) -> list[Node]:
        nodes, end = self._list()
        if end is not None:
            raise TemplateError(f"template: unexpected {{{{{end}}}}}")
        return nodes

    def _list(self) -> tuple[list[Node], str | None]:
        nodes: list[Node] = []
        while self.i < len(self.parts):
            kind, text = self.parts[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(Text(text))
                continue
            if text.startswith("/*"):
                continue
            word = text.split(None, 1)[0] if text else ""
            if word in ("end", "else"):
                return nodes, text
            if word in ("if", "range", "with"):
                nodes.append(self._block(word, text[len(word) :]))
                continue
            if not text:
                raise TemplateError("template: missing value for command")
            nodes.append(Action(_pipeline(_tokens(text))))
        return nodes, None

    def _block(self, kind: str, rest: str) -> Block:
        pipe = _pipeline(_tokens(rest))
        body, end = self._list()
        else_body: list[Node] = []
        if end is None:
            raise TemplateError(f"template: unexpected EOF in {kind}")
        if end.startswith("else"):
            rest2 = end[4:].strip()
            if rest2.startswith("if ") or rest2.startswith("with "):
                # `else if x` is `else`{{if x}} … {{end}} sharing the outer end
                word = rest2.split(None, 1)[0]
                else_body = [self._block(word, rest2[len(word) :])]
            else:
                else_body, end2 = self._list()
                if end2 != "end":
                    raise TemplateError(f"template: expected end after else in {kind}")
        return Block(kind, pipe, body, else_body)


def _pipeline(toks: list[tuple[str, str]]) -> Pipeline:
    decl: list[str] = []
    # `$x := …` or `$i, $v := …`
    j = 0
    names: list[str] = []
    while j < len(toks) and toks[j][0] == "var":
        names.append(toks[j][1])
        j += 1
        if j < len(toks) and toks[j][0] == "comma":
            j += 1
            continue
        break
    if names and j < len(toks) and toks[j][0] == "decl":
        decl = names
        toks = toks[j + 1 :]
    cmds: list[list[Any]] = [[]]
    k = 0
    while k < len(toks):
        kind, text = toks[k]
        k += 1
        if kind == "pipe":
            cmds.append([])
            continue
        if kind == "lp":
            depth, start = 1, k
            while k < len(toks) and depth:
                if toks[k][0] == "lp":
                    depth += 1
                elif toks[k][0] == "rp":
                    depth -= 1
                k += 1
            if depth:
                raise TemplateError("template: unclosed left paren")
            sub = _pipeline(toks[start : k - 1])
            chain: list[str] = []
            if k < len(toks) and toks[k][0] == "field" and toks[k][1] != ".":
                chain = toks[k][1].split(".")[1:]
                k += 1
            cmds[-1].append(("pipe", sub, chain))
            continue
        if kind == "var" and k < len(toks) and toks[k][0] == "field" and toks[k][1] != ".":
            cmds[-1].append(("var", text, toks[k][1].split(".")[1:]))
            k += 1
            continue
        if kind == "var":
            cmds[-1].append(("var", text, []))
        elif kind == "field":
            cmds[-1].append(("field", [] if text == "." else text.split(".")[1:]))
        elif kind == "str":
            cmds[-1].append(("lit", json.loads(text)))
        elif kind == "raw":
            cmds[-1].append(("lit", text[1:-1]))
        elif kind == "char":
            cmds[-1].append(("lit", ord(json.loads('"' + text[1:-1] + '"'))))
        elif kind == "num":
            cmds[-1].append(("lit", float(text) if any(c in text for c in ".eE") else int(text)))
        elif kind == "ident":
            if text in ("true", "false"):
                cmds[-1].append(("lit", text == "true"))
            elif text == "nil":
                cmds[-1].append(("lit", None))
            else:
                cmds[-1].append(("func", text))
        else:
            raise TemplateError(f"template: unexpected {text!r}")
    if any(not c for c in cmds):
        raise TemplateError("template: missing command in pipeline")
    return Pipeline(decl, cmds)


# -- values ---------------------------------------------------------------------------------


class Missing:
    """A map lookup that found nothing; prints as <no value>."""

    def __bool__(self) -> bool:
        return False


MISSING = Missing()


def go_str(value: Any) -> str:
    """Render like Go's fmt %v."""
    if value is None:
        return "<nil>"
    if isinstance(value, Missing):
        return NO_VALUE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value)) if abs(value) < 1e21 else repr(value)
        return repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def _truthy(value: Any) -> bool:
    if isinstance(value, Missing) or value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


def go_json(value: Any) -> str:
    if hasattr(value, "to_json"):
        value = value.to_json()
    if isinstance(value, Missing):
        value = None
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    return str(value)


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            item = item.get(key, MISSING)
        elif isinstance(item, (list, tuple, str)):
            try:
                item = item[int(key)]
            except (IndexError, ValueError):
                raise TemplateError(f"template: index out of range: {key}")
        else:
            raise TemplateError(f"template: can't index item of type {type(item).__name__}")
    return item


def _printf(fmt: str, *args: Any) -> str:
    out, ai = [], 0
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%" or i + 1 >= len(fmt):
            out.append(c)
            i += 1
            continue
        j = i + 1
        while j < len(fmt) and fmt[j] in "-+ #0123456789.":
            j += 1
        verb = fmt[j] if j < len(fmt) else "v"
        spec = fmt[i + 1 : j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        arg: Any = args[ai] if ai < len(args) else MISSING
        ai += 1
        if verb in "sv":
            out.append(("%" + spec + "s") % go_str(arg))
        elif verb == "q":
            out.append(json.dumps(go_str(arg)))
        elif verb in "dxXobc":
            out.append(("%" + spec + verb) % int(arg))
        elif verb in "feEgG":
            out.append(("%" + spec + verb) % float(arg))
        elif verb == "t":
            out.append(go_str(bool(arg)))
        else:
            out.append(go_str(arg))
    return "".join(out)


def _truncate(s: Any, n: int) -> str:
    text = go_str(s)
    return text[: int(n)] if len(text) > int(n) else text


def _cmp(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def fn(a: Any, *bs: Any) -> bool:
        return any(op(a, b) for b in bs) if op is _eq else all(op(a, b) for b in bs)

    return fn


def _eq(a: Any, b: Any) -> bool:
    return bool(a == b)


FUNCS: dict[str, Callable[..., Any]] = {
    "json": go_json,
    "join": lambda items, sep: sep.join(go_str(i) for i in (items or [])),
    "split": lambda s, sep: go_str(s).split(sep),
    "title": lambda s: go_str(s).title(),
    "lower": lambda s: go_str(s).lower(),
    "upper": lambda s: go_str(s).upper(),
    "pad": lambda s, left, right: " " * int(left) + go_str(s) + " " * int(right),
    "truncate": _truncate,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "print": lambda *a: "".join(go_str(x) for x in a),
    "printf": _printf,
    "index": _index,
    "len": lambda v: len(v) if v is not None and not isinstance(v, Missing) else 0,
    "slice": lambda v, *a: v[int(a[0]) : int(a[1])] if len(a) > 1 else v[int(a[0]) :] if a else v,
    "eq": _cmp(_eq),
    "ne": _cmp(lambda a, b: a != b),
    "lt": _cmp(lambda a, b: a < b),
    "le": _cmp(lambda a, b: a <= b),
    "gt": _cmp(lambda a, b: a > b),
    "ge": _cmp(lambda a, b: a >= b),
    "not": lambda v: not _truthy(v),
}


# -- evaluation -----------------------------------------------------------------------------


def _field(obj: Any, name: str, args: list[Any]) -> Any:
    if isinstance(obj, dict):
        if args:
            raise TemplateError(f"template: {name} is not a method but has arguments")
        return obj.get(name, MISSING)
    if obj is None or isinstance(obj, Missing):
        raise TemplateError(f"template: nil pointer evaluating .{name}")
    attr = getattr(obj, name, MISSING)
    if isinstance(attr, Missing):
        raise TemplateError(f"template: can't evaluate field {name} in type {type(obj).__name__}")
    if callable(attr):
        return attr(*args)
    return attr


class Template:
    """A parsed template; `render(data)` returns the text."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.nodes = _Parser(src).parse()

    def render(self, data: Any) -> str:
        out: list[str] = []
        self._exec(self.nodes, data, {"$": data}, out)
        return "".join(out)

    def _exec(self, nodes: list[Node], dot: Any, env: dict[str, Any], out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, Text):
                out.append(node.text)
            elif isinstance(node, Action):
                value = self._pipe(node.pipe, dot, env)
                if not node.pipe.decl:
                    out.append(go_str(value))
            elif isinstance(node, Block):
                self._block(node, dot, env, out)

    def _block(self, node: Block, dot: Any, env: dict[str, Any], out: list[str]) -> None:
        value = self._pipe(node.pipe, dot, dict(env)) if node.kind != "range" else None
        if node.kind == "if":
            self._exec(node.body if _truthy(value) else node.else_body, dot, env, out)
        elif node.kind == "with":
            if _truthy(value):
                self._exec(node.body, value, env, out)
            else:
                self._exec(node.else_body, dot, env, out)
        else:
            pipe = Pipeline([], node.pipe.cmds)
            coll = self._pipe(pipe, dot, env)
            if isinstance(coll, dict):
                items = [(k, coll[k]) for k in sorted(coll)]
            elif isinstance(coll, (list, tuple)):
                items = list(enumerate(coll))
            elif isinstance(coll, int) and not isinstance(coll, bool):
                items = [(i, i) for i in range(coll)]
            elif coll is None or isinstance(coll, Missing):
                items = []
            else:
                raise TemplateError(f"template: range can't iterate over {go_str(coll)}")
            if not items:
                self._exec(node.else_body, dot, env, out)
            for key, item in items:
                inner = dict(env)
                decl = node.pipe.decl
                if len(decl) == 1:
                    inner[decl[0]] = item
                elif len(decl) == 2:
                    inner[decl[0]], inner[decl[1]] = key, item
                self._exec(node.body, item, inner, out)

    def _pipe(self, pipe: Pipeline, dot: Any, env: dict[str, Any]) -> Any:
        value: Any = MISSING
        for n, cmd in enumerate(pipe.cmds):
            value = self._cmd(cmd, dot, env, value if n else None, n > 0)
        for name in pipe.decl:
            env[name] = value
        return value

    def _operand(self, op: tuple[Any, ...], dot: Any, env: dict[str, Any]) -> Any:
        kind = op[0]
        if kind == "lit":
            return op[1]
        if kind == "field":
            value = dot
            for name in op[1]:
                value = _field(value, name, [])
            return value
        if kind == "var":
            if op[1] not in env:
                raise TemplateError(f"template: undefined variable: {op[1]}")
            value = env[op[1]]
            for name in op[2]:
                value = _field(value, name, [])
            return value
        if kind == "pipe":
            value = self._pipe(op[1], dot, env)
            for name in op[2]:
                value = _field(value, name, [])
            return value
        if kind == "func":
            return self._call(op[1], [])
        raise TemplateError(f"template: bad operand {op!r}")

    def _call(self, name: str, args: list[Any]) -> Any:
        fn = FUNCS.get(name)
        if fn is None:
            raise TemplateError(f'template: function "{name}" not defined')
        try:
            return fn(*args)
        except TypeError as err:
            raise TemplateError(f"template: wrong arguments for {name}: {err}")

    def _cmd(
        self, cmd: list[Any], dot: Any, env: dict[str, Any], piped: Any, has_piped: bool
    ) -> Any:
        head = cmd[0]
        rest = [self._operand(op, dot, env) for op in cmd[1:]]
        if has_piped:
            rest.append(piped)
        if head[0] == "func":
            if head[1] in ("and", "or"):
                vals = rest
                result: Any = vals[0] if vals else MISSING
                for v in vals:
                    result = v
                    if (head[1] == "and") != _truthy(v):
                        break
                return result
            return self._call(head[1], rest)
        if head[0] == "field" and rest and head[1]:
            # a method call with arguments: `.Label "x"`
            value = dot
            for name in head[1][:-1]:
                value = _field(value, name, [])
            return _field(value, head[1][-1], rest)
        if rest:
            raise TemplateError("template: can't give arguments to a non-function")
        return self._operand(head, dot, env)


class HeaderRow:
    """Stands in for a row when rendering a `table` header: each field is its column title."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Title(self._headers.get(name, name.upper()))


class _Title(str):
    """A header string that also answers method-style calls (`.Label "x"`)."""

    def __call__(self, *args: Any) -> str:
        # docker titles a method column by its argument: `{{.Label "x"}}` → "x"
        return str(args[0]) if args else str(self)
