"""Tables, human units and `--format` handling shared by every listing verb.

`tabwrite` reproduces Go's text/tabwriter as docker configures it (minwidth 10, padding 3,
spaces), so skiff's tables line up column for column with docker's. Sizes and durations follow
docker's go-units ("1.99MB", "About a minute").
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

from skiff.errors import InvalidArgument

TYPE_CHECKING = False  # no `typing` at run time: start-up cost
if TYPE_CHECKING:
    from typing import Any, TextIO

# -- tabwriter ------------------------------------------------------------------------------


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells the way Go's tabwriter (flags 0, padchar ' ') does."""
    raw_lines = text.split("\n")
    trailing_newline = raw_lines and raw_lines[-1] == ""
    if trailing_newline:
        raw_lines.pop()
    out: list[str] = []
    # A line without tabs ends every column block (tabwriter flushes there).
    segment: list[list[str]] = []
    for raw in raw_lines:
        cells = raw.split("\t")
        if len(cells) == 1:
            out.extend(_format_block(segment, minwidth, padding))
            segment = []
            out.append(raw)
        else:
            segment.append(cells)
    out.extend(_format_block(segment, minwidth, padding))
    return "\n".join(out) + ("\n" if trailing_newline else "")


def _format_block(lines: list[list[str]], minwidth: int, padding: int) -> list[str]:
    rendered: list[str] = []
    widths: list[int] = []

    def write_lines(l0: int, l1: int) -> None:
        for line in lines[l0:l1]:
            parts = []
            for j, cell in enumerate(line):
                if j < len(widths) and j < len(line) - 1:
                    parts.append(cell.ljust(widths[j]))
                else:
                    parts.append(cell)
            rendered.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            line = lines[this]
            if column >= len(line) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1:
                line = lines[this]
                if column >= len(line) - 1:
                    break
                w = len(line[column]) + padding
                if w > width:
                    width = w
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return rendered


# -- units ----------------------------------------------------------------------------------

_DECIMAL = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
_BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]


def _custom_size(precision: int, size: float, base: float, units: list[str]) -> str:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision: decimal units, e.g. 1.99MB."""
    return _custom_size(precision, float(size), 1000.0, _DECIMAL)


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, e.g. 1.5GiB."""
    return _custom_size(4, float(size), 1024.0, _BINARY)


_RAM = r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$"
_MULT = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: "512m" -> 536870912 (binary multipliers)."""
    import re

    m = re.match(_RAM, text)
    if not m:
        raise InvalidArgument(f"invalid size: '{text}'")
    value = float(m.group(1))
    unit = (m.group(2) or "").lower()
    return int(value * _MULT.get(unit, 1))


def human_duration(seconds: float) -> str:
    """go-units HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)  # Go rounds half away from zero
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def ago(unix_seconds: float, now: float | None = None) -> str:
    now = time.time() if now is None else now
    return human_duration(now - unix_seconds) + " ago"


def go_time(unix_seconds: float) -> str:
    """Go's time.Time.String() for a Unix time in the local zone: 2026-11-28 10:55:29 +0000 UTC."""
    t = time.localtime(unix_seconds)
    off = t.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", t)
        + f" {sign}{off // 3600:02d}{off % 3600 // 60:02d} {t.tm_zone}"
    )


_RFC3339 = r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch for an RFC 3339 timestamp with nanoseconds; 0 for Go's zero time."""
    import re

    m = re.match(_RFC3339, text or "")
    if not m:
        return 0.0
    import calendar

    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    base = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    frac = float("0" + m.group(7)) if m.group(7) else 0.0
    tz = m.group(8)
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        base -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    if y <= 1:
        return 0.0
    return base + frac


def ellipsis(text: str, width: int) -> str:
    """docker's formatter.Ellipsis: cut to `width` display columns ending in '…'."""
    if len(text) <= width:
        return text
    if width <= 0:
        return ""
    return text[: width - 1] + "…"


def go_quote(text: str) -> str:
    """Go's strconv.Quote: double quotes, backslash escapes, \\u for non-printable runes."""
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o < 0x7F or ch.isprintable():
            out.append(ch)
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def short_id(ident: str) -> str:
    ident = ident.removeprefix("sha256:")
    return ident[:12]


# -- --format -------------------------------------------------------------------------------


def render(
    fmt: str,
    rows: Iterable[Any],
    headers: dict[str, str],
    default_table: str,
    out: TextIO | None = None,
    quiet_field: str | None = None,
) -> None:
    """Print rows as docker does for `--format` (empty → default table, `table …`, `json`, raw)."""
    out = out or sys.stdout
    if quiet_field is not None:
        fmt = "{{." + quiet_field + "}}"
    if not fmt or fmt == "table":
        fmt = default_table
    if fmt == "json":
        fmt = "{{json .}}"
    is_table = fmt.startswith("table")
    if is_table:
        fmt = fmt[5:].lstrip()
    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
    rows = list(rows)
    text = _render_plain_fields(fmt, rows, headers if is_table else None)
    if text is None:
        from skiff.cli.gotemplate import HeaderRow, Template

        tmpl = Template(fmt)
        buf: list[str] = []
        if is_table:
            buf.append(tmpl.render(HeaderRow(headers)) + "\n")
        for row in rows:
            buf.append(tmpl.render(row) + "\n")
        text = "".join(buf)
    out.write(tabwrite(text) if is_table else text)


def _render_plain_fields(fmt: str, rows: list[Any], headers: dict[str, str] | None) -> str | None:
    """Fast path for formats made only of text and `{{.Field}}` on row objects (every default
    table): no template engine is imported. None when the format needs the engine."""
    parts: list[tuple[str, str]] = []
    rest = fmt
    while True:
        i = rest.find("{{")
        if i < 0:
            tail = rest
            break
        j = rest.find("}}", i)
        if j < 0:
            return None
        name = rest[i + 2 : j].strip()
        if not (name.startswith(".") and name[1:].isidentifier()):
            return None
        parts.append((rest[:i], name[1:]))
        rest = rest[j + 2 :]
    if "}}" in tail:
        return None
    lines: list[str] = []
    if headers is not None:
        lines.append("".join(lit + headers.get(name, name.upper()) for lit, name in parts) + tail)
    for row in rows:
        if isinstance(row, dict):
            return None
        cells = []
        for lit, name in parts:
            value = getattr(row, name, None)
            if not isinstance(value, str):
                return None
            cells.append(lit + value)
        lines.append("".join(cells) + tail)
    return "".join(line + "\n" for line in lines)
