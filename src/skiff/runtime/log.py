"""The runtime's log, in runc's formats: what containerd-shim and conmon read back.

`--log FILE` appends records there (`--log-format json`: {"level","msg","time"} per line, as
logrus writes; `text`: time="…" level=… msg="…"); without it, records go to stderr. Errors are
also printed as one plain line on stderr by the CLI.
"""

from __future__ import annotations

import os
import sys
import time

_path: str | None = None
_format = "text"
_debug = False


def configure(path: str | None, fmt: str, debug: bool) -> None:
    global _path, _format, _debug
    _path = path or None
    _format = fmt
    _debug = debug


def settings() -> tuple[str | None, str, bool]:
    """What `configure` was given: for a process forked before it was called."""
    return _path, _format, _debug


def debug_enabled() -> bool:
    return _debug


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def record(level: str, msg: str) -> None:
    if level == "debug" and not _debug:
        return
    if _format == "json":
        from skiff.runtime import jsonio

        line = jsonio.dumps({"level": level, "msg": msg, "time": _stamp()})
    else:
        line = f"time={_quote(_stamp())} level={level} msg={_quote(msg)}"
    data = (line + "\n").encode()
    if _path:
        try:
            fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            sys.stderr.write(line + "\n")
            return
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    elif level != "error":
        sys.stderr.write(line + "\n")


def error(msg: str) -> None:
    record("error", msg)


def warning(msg: str) -> None:
    record("warning", msg)


def debug(msg: str) -> None:
    record("debug", msg)


_TRACE = os.environ.get("SKIFF_RUNTIME_TRACE", "")
# A number is the CLOCK_MONOTONIC nanoseconds the caller started us at (a timing harness);
# anything else non-empty: time from this module's import.
_T0 = int(_TRACE) / 1e9 if _TRACE.isdigit() else time.perf_counter()


def trace(label: str) -> None:
    """With SKIFF_RUNTIME_TRACE set: milliseconds since start at `label` and this process's
    CPU time (forked children inherit none), on stderr (profiling).

    SKIFF_RUNTIME_TRACE=<CLOCK_MONOTONIC ns> counts from that instant (set by a harness just
    before it execs the runtime), so interpreter start-up shows too."""
    if _TRACE:
        os.write(
            2,
            f"[trace {os.getpid()}] {(time.perf_counter() - _T0) * 1000:7.2f} ms"
            f" (cpu {time.process_time() * 1000:6.2f}) {label}\n".encode(),
        )
