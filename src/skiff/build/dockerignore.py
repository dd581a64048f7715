"""`.dockerignore` patterns with the semantics of moby's patternmatcher.

Patterns are cleaned (`filepath.Clean`, leading "/" dropped); `*` matches within one path
segment, `?` one character, `[...]` a class, `**` any number of segments, the escape `\\`
makes the next character literal. A pattern matches a path when it matches the path itself or
one of its parent directories. Patterns apply in order; `!pattern` re-includes what earlier
patterns excluded (the last matching pattern wins).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from skiff.errors import InvalidArgument


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]

    def match(self, path: str) -> bool:
        if self.regex.match(path):
            return True
        parts = posixpath.dirname(path).split("/") if "/" in path else []
        return any(self.regex.match("/".join(parts[: i + 1])) for i in range(len(parts)))


def compile_glob(pattern: str, *, double_star: bool = True) -> re.Pattern[str]:
    """A filepath.Match-style glob (plus `**` when `double_star`) as an anchored regex."""
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if double_star and i + 1 < n and pattern[i + 1] == "*":
                i += 2
                while i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise InvalidArgument(f"syntax error in pattern {pattern!r}: unterminated [")
            body = pattern[i + 1 : end]
            if body.startswith("^"):
                body = "!" + body[1:]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as exc:
        raise InvalidArgument(f"syntax error in pattern {pattern!r}: {exc}") from None


def parse(text: str) -> list[Pattern]:
    """The patterns of a .dockerignore file (comments and blank lines skipped)."""
    out: list[Pattern] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        if not line:
            continue
        cleaned = posixpath.normpath(line)
        if cleaned.startswith("/"):
            cleaned = cleaned.lstrip("/") or "."
        if cleaned == ".":
            continue  # moby drops "." (it would exclude everything, including the Dockerfile)
        out.append(Pattern(line, exclusion, compile_glob(cleaned)))
    return out


class Matcher:
    def __init__(self, patterns: list[Pattern]) -> None:
        self.patterns = patterns
        self.has_exclusions = any(p.exclusion for p in patterns)

    def excluded(self, path: str) -> bool:
        """True when context-relative `path` (slash separated, no leading "./") is ignored."""
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue
            if p.match(path):
                matched = not p.exclusion
        return matched
