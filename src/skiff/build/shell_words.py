"""Docker's word processing for Dockerfile arguments: variable expansion and quote removal.

These are the rules of BuildKit's shell lexer, which the legacy builder shares:
`$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`, `${VAR:?msg}`,
`${VAR?msg}`; single quotes keep everything literal; inside double quotes only `$` expands
and the escape character escapes `"`, `$` and itself; outside quotes the escape character
makes the next character literal. Unset variables expand to "".
"""

from __future__ import annotations

from collections.abc import Mapping

from skiff.errors import InvalidArgument


class _Scanner:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.s = text
        self.i = 0
        self.env = env
        self.esc = escape

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch

    # -- words ---------------------------------------------------------------------------
    def words(self) -> list[str]:
        out: list[str] = []
        cur: list[str] = []
        in_word = False
        while self.i < len(self.s):
            ch = self.peek()
            if ch in " \t\r\n":
                self.i += 1
                if in_word:
                    out.append("".join(cur))
                    cur, in_word = [], False
                continue
            in_word = True
            cur.append(self.unit())
        if in_word:
            out.append("".join(cur))
        return out

    def word(self, stop: str = "") -> str:
        """All of the input (or up to an unquoted char in `stop`) as one word."""
        parts: list[str] = []
        while self.i < len(self.s) and self.peek() not in stop:
            parts.append(self.unit())
        return "".join(parts)

    def unit(self) -> str:
        ch = self.peek()
        if ch == "'":
            return self.single_quoted()
        if ch == '"':
            return self.double_quoted()
        if ch == "$":
            return self.dollar()
        if ch == self.esc:
            self.i += 1
            nxt = self.next()
            return nxt  # escape makes the next character literal (a trailing escape vanishes)
        self.i += 1
        return ch

    def single_quoted(self) -> str:
        self.i += 1
        start = self.i
        end = self.s.find("'", start)
        if end < 0:
            raise InvalidArgument(
                f"unexpected end of statement while looking for matching single-quote in {self.s!r}"
            )
        self.i = end + 1
        return self.s[start:end]

    def double_quoted(self) -> str:
        self.i += 1
        parts: list[str] = []
        while True:
            if self.i >= len(self.s):
                raise InvalidArgument(
                    f"unexpected end of statement while looking for matching double-quote in {self.s!r}"
                )
            ch = self.peek()
            if ch == '"':
                self.i += 1
                return "".join(parts)
            if ch == "$":
                parts.append(self.dollar())
            elif ch == self.esc:
                nxt = self.s[self.i + 1] if self.i + 1 < len(self.s) else ""
                if nxt in ('"', "$", self.esc):
                    parts.append(nxt)
                    self.i += 2
                else:
                    parts.append(ch)
                    self.i += 1
            else:
                parts.append(ch)
                self.i += 1

    def dollar(self) -> str:
        self.i += 1  # '$'
        ch = self.peek()
        if ch == "{":
            return self.braced()
        name = self.name()
        if not name:
            return "$"
        return self.env.get(name, "")

    def name(self) -> str:
        start = self.i
        while self.i < len(self.s) and (self.s[self.i].isalnum() or self.s[self.i] == "_"):
            self.i += 1
        return self.s[start : self.i]

    def braced(self) -> str:
        self.i += 1  # '{'
        name = self.name()
        if not name:
            raise InvalidArgument(f"bad substitution in {self.s!r}: missing variable name")
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        colon = ch == ":"
        if colon:
            ch = self.next()
        if ch not in "-+?":
            raise InvalidArgument(
                f"unsupported modifier ({ch or 'end'}) in substitution in {self.s!r}"
            )
        word = self.word(stop="}")
        if self.next() != "}":
            raise InvalidArgument(f"missing '}}' in substitution in {self.s!r}")
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if ch == "-":
            return value if is_set else word  # type: ignore[return-value]
        if ch == "+":
            return word if is_set else ""
        if not is_set:
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
        return value  # type: ignore[return-value]


def expand_word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word: variables expanded, quotes removed (whitespace kept)."""
    return _Scanner(text, env, escape).word()


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace, expanding each word."""
    return _Scanner(text, env, escape).words()
