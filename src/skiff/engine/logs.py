"""Reading the json-file logs the shims write: `{"log": "...", "stream": "...", "time": "..."}`."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime


def parse_time(text: str) -> float:
    """RFC 3339 with nanoseconds → Unix seconds (float)."""
    main, _, frac = text.rstrip("Z").partition(".")
    dt = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return dt.timestamp() + (float("0." + frac[:9]) if frac else 0.0)


def parse_since(value: str | None) -> float | None:
    """Docker's since/until query values: Unix seconds with optional fraction ("1700000000.5")."""
    if value in (None, "", "0"):
        return None
    try:
        return float(str(value))
    except ValueError:
        return parse_time(str(value))


def _tail_lines(path: str, n: int) -> list[bytes]:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        block = 65536
        data = b""
        pos = end
        while pos > 0 and data.count(b"\n") <= n:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
        lines = data.splitlines()
        return lines[-n:] if n else []


def rotated_files(path: str) -> list[str]:
    """The rotated logs beside `path` (LOG.1 is the newest), oldest first."""
    found = []
    n = 1
    while os.path.exists(f"{path}.{n}"):
        found.append(f"{path}.{n}")
        n += 1
    return list(reversed(found))


def read_logs(
    path: str,
    *,
    stdout: bool = True,
    stderr: bool = True,
    since: float | None = None,
    until: float | None = None,
    tail: int | None = None,
    follow: bool = False,
    still_running: Callable[[], bool] = lambda: False,
) -> Iterator[tuple[str, str, bytes]]:
    """(stream, time, data) entries, rotated files first; with follow, keeps reading while
    `still_running()`, across rotations (by inode) and truncations."""
    if not os.path.exists(path):
        return

    def entries(raw_lines: list[bytes]) -> Iterator[tuple[str, str, bytes]]:
        for raw in raw_lines:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            stream = entry.get("stream", "stdout")
            if (stream == "stdout" and not stdout) or (stream == "stderr" and not stderr):
                continue
            ts = entry.get("time", "")
            if since is not None or until is not None:
                t = parse_time(ts)
                if since is not None and t < since:
                    continue
                if until is not None and t > until:
                    continue
            yield stream, ts, entry.get("log", "").encode()

    f = open(path, "rb")
    try:
        if tail is not None and tail >= 0:
            lines = _tail_lines(path, tail)
            for older in reversed(rotated_files(path)):
                if len(lines) >= tail:
                    break
                lines = _tail_lines(older, tail - len(lines)) + lines
            f.seek(0, os.SEEK_END)
            yield from entries(lines)
        else:
            for older in rotated_files(path):
                with open(older, "rb") as g:
                    yield from entries(g.read().splitlines())
            data = f.read()
            complete, _, pending = data.rpartition(b"\n")
            yield from entries(complete.split(b"\n") if complete else [])
            f.seek(f.tell() - len(pending))
        pending = b""
        while follow:
            chunk = f.read()
            if chunk:
                pending += chunk
                complete, _, pending = pending.rpartition(b"\n")
                if complete:
                    yield from entries(complete.split(b"\n"))
                continue
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is not None and current.st_ino != os.fstat(f.fileno()).st_ino:
                f.close()  # rotated: what was left in the old file was read above
                f = open(path, "rb")
                pending = b""
                continue
            if current is not None and current.st_size < f.tell():
                f.seek(0)  # truncated (max-file 1)
                pending = b""
                continue
            if not still_running():
                if f.read(1):
                    f.seek(-1, os.SEEK_CUR)
                    continue
                return
            time.sleep(0.1)
    finally:
        f.close()
