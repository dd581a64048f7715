"""The Dockerfile frontend: text -> stages of instructions.

Parsing (directives, continuations, comments, JSON vs shell form, heredocs) is BuildKit's own
parser from the `dockerfile` PyPI package; what the words mean — stages, ARG scoping,
expansion, flags, validation — is ours. Errors name the line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skiff.build.shell_words import expand_word, expand_words
from skiff.errors import InvalidArgument

INSTRUCTIONS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)
# Instructions whose arguments the builder expands with the build's variables.
EXPANDS = frozenset(
    {
        "ADD",
        "COPY",
        "ENV",
        "EXPOSE",
        "FROM",
        "LABEL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
        "ARG",
    }
)
# The args every build has without declaring them (Docker's predefined proxy args).
PREDEFINED_ARGS = frozenset(
    {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str
    fd: int = 0


@dataclass(frozen=True)
class Instruction:
    cmd: str  # upper case
    args: tuple[str, ...]  # as parsed (unexpanded)
    line: int
    original: str
    json_form: bool = False
    flags: tuple[str, ...] = ()
    heredocs: tuple[Heredoc, ...] = ()
    onbuild: Instruction | None = None

    def flag(self, name: str, default: str | None = None) -> str | None:
        """Value of `--name=value` (the last one wins); `--name` alone gives "true"."""
        value = default
        for f in self.flags:
            key, eq, v = f[2:].partition("=")
            if key == name:
                value = v if eq else "true"
        return value

    def flag_all(self, name: str) -> list[str]:
        return [f[2:].partition("=")[2] for f in self.flags if f[2:].partition("=")[0] == name]

    def where(self) -> str:
        return f"line {self.line}: {self.cmd}"


@dataclass
class Stage:
    index: int
    base: str  # unexpanded FROM image
    name: str | None
    platform: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    escape: str
    syntax: str | None
    meta_args: list[Instruction]  # ARGs before the first FROM
    stages: list[Stage]

    def stage(self, name_or_index: str) -> Stage:
        for s in self.stages:
            if s.name == name_or_index.lower():
                return s
        if name_or_index.isdigit() and int(name_or_index) < len(self.stages):
            return self.stages[int(name_or_index)]
        raise InvalidArgument(f"failed to reach build target {name_or_index} in Dockerfile")


def _directives(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = _DIRECTIVE.match(line.strip())
        if not m:
            break
        found[m.group(1).lower()] = m.group(2)
    return found


def parse(text: str) -> Dockerfile:
    import dockerfile as bk  # BuildKit's parser (Go, through the `dockerfile` package)

    directives = _directives(text)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise InvalidArgument(f"invalid ESCAPE '{escape}'. Must be ` or \\")
    try:
        commands = bk.parse_string(text)
    except bk.GoParseError as exc:
        raise InvalidArgument(f"Dockerfile parse error: {exc}") from None
    meta: list[Instruction] = []
    stages: list[Stage] = []
    for c in commands:
        ins = _instruction(c)
        if ins.cmd == "FROM":
            stages.append(_stage(ins, len(stages)))
        elif not stages:
            if ins.cmd != "ARG":
                raise InvalidArgument(
                    f"Dockerfile parse error line {ins.line}: no build stage in current context "
                    f"({ins.cmd} before FROM)"
                )
            meta.append(ins)
        else:
            stages[-1].instructions.append(ins)
    if not stages:
        raise InvalidArgument("Dockerfile has no FROM instruction (file with no instructions?)")
    names = [s.name for s in stages if s.name]
    for n in names:
        if names.count(n) > 1:
            raise InvalidArgument(f"duplicate stage name {n!r}")
    return Dockerfile(escape, directives.get("syntax"), meta, stages)


def _instruction(c: Any) -> Instruction:
    cmd = str(c.cmd).upper()
    line = int(c.start_line)
    if cmd not in INSTRUCTIONS:
        raise InvalidArgument(f"Dockerfile parse error line {line}: unknown instruction: {cmd}")
    heredocs = tuple(Heredoc(h.name, h.content, h.file_descriptor) for h in c.heredocs)
    onbuild = None
    if cmd == "ONBUILD":
        sub = str(c.sub_cmd or "").upper()
        if sub in ("ONBUILD", "FROM", "MAINTAINER"):
            raise InvalidArgument(
                f"Dockerfile parse error line {line}: {sub} isn't allowed as an ONBUILD trigger"
            )
        if sub not in INSTRUCTIONS:
            raise InvalidArgument(f"Dockerfile parse error line {line}: unknown instruction: {sub}")
        onbuild = Instruction(
            sub,
            tuple(c.value),
            line,
            c.original,
            bool(c.json),
            tuple(c.flags),
            heredocs,
        )
    ins = Instruction(
        cmd,
        tuple(c.value),
        line,
        str(c.original),
        bool(c.json),
        tuple(c.flags),
        heredocs,
        onbuild,
    )
    _validate(ins)
    return ins


_MIN_ARGS = {
    "FROM": 1,
    "COPY": 2,
    "ADD": 2,
    "WORKDIR": 1,
    "USER": 1,
    "EXPOSE": 1,
    "STOPSIGNAL": 1,
    "VOLUME": 1,
    "LABEL": 1,
    "ENV": 1,
    "ARG": 1,
    "SHELL": 1,
    "MAINTAINER": 1,
    "HEALTHCHECK": 1,
}


def _validate(ins: Instruction) -> None:
    args = [a for a in ins.args if a != ""]
    want = _MIN_ARGS.get(ins.cmd, 0)
    if ins.cmd in ("COPY", "ADD") and ins.heredocs:
        want = 1
    if len(args) < want:
        need = "at least two arguments" if want == 2 else "at least one argument"
        raise InvalidArgument(f"Dockerfile parse error line {ins.line}: {ins.cmd} requires {need}")
    if ins.cmd == "SHELL" and not ins.json_form:
        raise InvalidArgument(
            f"Dockerfile parse error line {ins.line}: SHELL requires the arguments to be in JSON form"
        )
    if ins.cmd == "ENV" and len(args) % 2:
        raise InvalidArgument(f"Dockerfile parse error line {ins.line}: ENV names can not be blank")
    if ins.cmd == "LABEL" and len(args) % 2:
        raise InvalidArgument(
            f"Dockerfile parse error line {ins.line}: LABEL requires at least one argument"
        )
    if ins.cmd == "WORKDIR" and len(args) > 1:
        raise InvalidArgument(
            f"Dockerfile parse error line {ins.line}: WORKDIR requires exactly one argument"
        )


def _stage(ins: Instruction, index: int) -> Stage:
    args = list(ins.args)
    name = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not re.match(r"^[a-z][a-z0-9-_.]*$", name):
            raise InvalidArgument(
                f"Dockerfile parse error line {ins.line}: invalid name for build stage: {args[2]!r}, name can't start with a number or contain symbols"
            )
    elif len(args) != 1:
        raise InvalidArgument(
            f"Dockerfile parse error line {ins.line}: FROM requires either one or three arguments"
        )
    return Stage(index, args[0], name, ins.flag("platform"), ins.line)


# -- the meaning of arguments --------------------------------------------------------------


def key_values(ins: Instruction, env: Mapping[str, str], escape: str) -> list[tuple[str, str]]:
    """ENV / LABEL pairs, expanded, quotes removed. (The parser gives key, value, key, …)"""
    out = []
    args = list(ins.args)
    for i in range(0, len(args), 2):
        key = expand_word(args[i], env, escape)
        value = expand_word(args[i + 1], env, escape)
        if not key:
            raise InvalidArgument(f"{ins.where()}: names can not be blank")
        out.append((key, value))
    return out


def arg_decl(ins: Instruction, env: Mapping[str, str], escape: str) -> list[tuple[str, str | None]]:
    """ARG name[=default] … -> [(name, default or None)]."""
    out: list[tuple[str, str | None]] = []
    for raw in ins.args:
        name, eq, default = raw.partition("=")
        if not name:
            raise InvalidArgument(f"{ins.where()}: ARG names can not be blank")
        out.append((name, expand_word(default, env, escape) if eq else None))
    return out


def command_form(ins: Instruction, shell: list[str]) -> list[str]:
    """RUN/CMD/ENTRYPOINT arguments: JSON form as is, shell form wrapped in SHELL."""
    if ins.json_form:
        return list(ins.args)
    text = " ".join(ins.args)
    return [*shell, text]


def words(ins: Instruction, env: Mapping[str, str], escape: str) -> list[str]:
    if ins.json_form:
        return [expand_word(a, env, escape) if "$" in a else a for a in ins.args]
    out: list[str] = []
    for a in ins.args:
        out += expand_words(a, env, escape)
    return out


def parse_json_or_words(text: str) -> list[str]:
    """For `docker commit --change 'CMD ["sh"]'` style strings."""
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return [text]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return [text]
