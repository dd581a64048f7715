"""Progress for pull, push, load and build: rich bars on a terminal, plain lines otherwise.

Both renderers consume docker's JSON message stream ({"id", "status", "progressDetail"},
{"stream"}, {"error", "errorDetail"}, {"aux"}). An error message ends the stream with
`Unavailable`/`InvalidArgument`-style failure carrying the daemon's text.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from skiff.errors import SkiffError


class StreamFailed(SkiffError):
    """The daemon reported an error inside a progress stream (exit 1, its text printed)."""


def _error_of(msg: dict[str, Any]) -> str | None:
    if msg.get("errorDetail") or msg.get("error"):
        return str((msg.get("errorDetail") or {}).get("message") or msg.get("error"))
    return None


def _statuses(
    messages: Iterable[dict[str, Any]],
    aux: list[dict[str, Any]],
    on_stream: Callable[[str], object],
) -> Iterator[dict[str, Any]]:
    """The status messages of a stream: errors raise StreamFailed, `aux` payloads are collected,
    build output ("stream") goes to `on_stream`."""
    for msg in messages:
        err = _error_of(msg)
        if err:
            raise StreamFailed(err)
        if "aux" in msg:
            aux.append(msg["aux"])
        elif "stream" in msg:
            on_stream(msg["stream"])
        else:
            yield msg


def show(
    messages: Iterable[dict[str, Any]], out: TextIO | None = None, quiet: bool = False
) -> list[dict[str, Any]]:
    """Render a message stream; return the `aux` payloads. Raises StreamFailed on an error message."""
    out = out or sys.stdout
    if quiet:
        aux: list[dict[str, Any]] = []
        streamed: list[str] = []
        for _ in _statuses(messages, aux, streamed.append):
            pass
        # a quiet classic build streams only the image ID
        text = "".join(streamed).strip()
        if not aux and text.startswith("sha256:"):
            aux.append({"ID": text})
        return aux
    if out.isatty():
        return _rich(messages, out)
    return _plain(messages, out)


def _plain(messages: Iterable[dict[str, Any]], out: TextIO) -> list[dict[str, Any]]:
    aux: list[dict[str, Any]] = []
    last: dict[str, str] = {}

    def write(text: str) -> None:
        out.write(text)
        out.flush()

    for msg in _statuses(messages, aux, write):
        status = msg.get("status")
        if not status:
            continue
        ident = msg.get("id")
        # docker's non-terminal mode prints each status once per layer, without bars
        if msg.get("progressDetail") and ident and last.get(ident) == status:
            continue
        if ident:
            last[ident] = status
            out.write(f"{ident}: {status}\n")
        else:
            out.write(f"{status}\n")
        out.flush()
    return aux


def _is_layer(ident: str) -> bool:
    return len(ident) == 12 and all(c in "0123456789abcdef" for c in ident)


def _rich(messages: Iterable[dict[str, Any]], out: TextIO) -> list[dict[str, Any]]:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    aux: list[dict[str, Any]] = []
    console = Console(file=out)
    tasks: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.fields[ident]}"),
        TextColumn("{task.description:<18}"),
        BarColumn(),
        DownloadColumn(),
        console=console,
        transient=False,
    ) as progress:

        def print_stream(text: str) -> None:
            progress.console.print(text, end="", markup=False, highlight=False)

        for msg in _statuses(messages, aux, print_stream):
            status = msg.get("status") or ""
            ident = msg.get("id")
            if not ident or not _is_layer(ident):
                # "latest: Pulling from library/busybox", "Digest: …": lines, not bars
                line = f"{ident}: {status}" if ident else status
                progress.console.print(line, markup=False, highlight=False)
                continue
            detail = msg.get("progressDetail") or {}
            task = tasks.get(ident)
            if task is None:
                task = progress.add_task(status, ident=ident, total=detail.get("total") or None)
                tasks[ident] = task
            total = detail.get("total")
            current = detail.get("current")
            progress.update(task, description=status, total=total or None, completed=current or 0)
            if status in (
                "Pull complete",
                "Already exists",
                "Pushed",
                "Layer already exists",
                "Download complete",
            ):
                t = progress.tasks[task]
                progress.update(task, completed=t.total or 0)
    return aux
