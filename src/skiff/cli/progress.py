"""Progress for pull, push, load and build: rich bars on a terminal, plain lines otherwise.

Both renderers consume docker's JSON message stream ({"id", "status", "progressDetail"},
{"stream"}, {"error", "errorDetail"}, {"aux"}). An error message ends the stream with
`Unavailable`/`InvalidArgument`-style failure carrying the daemon's text.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from skiff.errors import SkiffError


class StreamFailed(SkiffError):
    """The daemon reported an error inside a progress stream (exit 1, its text printed)."""


def _error_of(msg: dict[str, Any]) -> str | None:
    if msg.get("errorDetail") or msg.get("error"):
        return str((msg.get("errorDetail") or {}).get("message") or msg.get("error"))
    return None


def show(
    messages: Iterable[dict[str, Any]], out: TextIO | None = None, quiet: bool = False
) -> list[dict[str, Any]]:
    """Render a message stream; return the `aux` payloads. Raises StreamFailed on an error message."""
    out = out or sys.stdout
    if quiet:
        aux: list[dict[str, Any]] = []
        streamed = []
        for msg in messages:
            err = _error_of(msg)
            if err:
                raise StreamFailed(err)
            if "aux" in msg:
                aux.append(msg["aux"])
            elif "stream" in msg:
                streamed.append(msg["stream"])
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
    for msg in messages:
        err = _error_of(msg)
        if err:
            raise StreamFailed(err)
        if "aux" in msg:
            aux.append(msg["aux"])
            continue
        if "stream" in msg:
            out.write(msg["stream"])
            out.flush()
            continue
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
        for msg in messages:
            err = _error_of(msg)
            if err:
                raise StreamFailed(err)
            if "aux" in msg:
                aux.append(msg["aux"])
                continue
            if "stream" in msg:
                progress.console.print(msg["stream"], end="", markup=False, highlight=False)
                continue
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
