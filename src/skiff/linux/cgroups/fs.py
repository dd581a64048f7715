"""cgroupfs file access shared by every controller and both hierarchies.

Controllers do not write files themselves: they turn `linux.resources` into a plan, a list of
`Write` (one value for one file, with alternative files where kernels differ) and `Ordered`
(writes that must be retried in reverse order when the kernel rejects the first order, like
cpu period/quota or memory limit/memory+swap). `execute()` carries a plan out against directories,
so controllers stay pure and unit tests can check plans and files without root.

Files are opened without O_CREAT: on a real cgroupfs a missing file means a missing controller,
and the fake trees in tests behave the same way.
"""

from __future__ import annotations

import errno
import os
import time
from _collections_abc import Mapping  # collections.abc.Mapping, minus 1 ms of importing collections

from skiff.errors import (
    Conflict,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    SkiffError,
)

TYPE_CHECKING = False  # typing and dataclasses cost ~25 ms to import; the runtime starts often
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

RESOURCES = "linux.resources"


class Write:
    """Write a value to the first of `choices` (file, value) whose file exists."""

    __slots__ = ("choices", "controller", "field", "optional")

    def __init__(
        self,
        controller: str,
        choices: tuple[tuple[str, str], ...],
        field: str,
        *,
        optional: bool = False,
    ) -> None:
        self.controller = controller
        self.choices = choices
        self.field = field
        # An "unlimited" value for a file this kernel lacks is already true: skip, don't fail.
        self.optional = optional

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Write) and (self.controller, self.choices, self.field) == (
            other.controller,
            other.choices,
            other.field,
        )

    def __hash__(self) -> int:
        return hash((self.controller, self.choices, self.field))

    def __repr__(self) -> str:
        return f"Write({self.controller!r}, {self.choices!r}, {self.field!r})"


class Ordered:
    """Writes applied in order; on EINVAL the whole group is retried in reverse order."""

    __slots__ = ("writes",)

    def __init__(self, writes: tuple[Write, ...]) -> None:
        self.writes = writes

    def __repr__(self) -> str:
        return f"Ordered({self.writes!r})"


Step = Write | Ordered


def write(
    controller: str, file: str, value: str | int, field: str, *, optional: bool = False
) -> Write:
    return Write(controller, ((file, str(value)),), field, optional=optional)


def log_warning(message: str) -> None:
    """Logging costs ~10 ms to import, so it is loaded only when there is something to say."""
    import logging

    logging.getLogger("skiff.linux.cgroups").warning("%s", message)


def log_debug(message: str) -> None:
    import logging

    logging.getLogger("skiff.linux.cgroups").debug("%s", message)


# --- validation of linux.resources values ------------------------------------------------------


def section(resources: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = resources.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{RESOURCES}.{key}: must be an object, got {value!r}")
    return value


def opt_int(
    sec: Mapping[str, Any],
    key: str,
    field: str,
    *,
    lo: int | None = None,
    hi: int | None = None,
    rule: str | None = None,
) -> int | None:
    """The integer at `sec[key]`, or None when absent; out of [lo, hi] → InvalidArgument."""
    value = sec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{field}: must be an integer, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if rule is None:
            rule = f"must be between {lo} and {hi}" if hi is not None else f"must be ≥ {lo}"
        raise InvalidArgument(f"{field}: {rule}, got {value}")
    return value


def opt_bool(sec: Mapping[str, Any], key: str, field: str) -> bool | None:
    value = sec.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InvalidArgument(f"{field}: must be true or false, got {value!r}")
    return value


def opt_list(sec: Mapping[str, Any], key: str, field: str) -> list[Any]:
    value = sec.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"{field}: must be a list, got {value!r}")
    return value


def device_number(entry: Any, field: str) -> tuple[int, int]:
    if not isinstance(entry, Mapping):
        raise InvalidArgument(f"{field}: must be an object, got {entry!r}")
    major = opt_int(entry, "major", f"{field}.major", lo=0)
    minor = opt_int(entry, "minor", f"{field}.minor", lo=0)
    if major is None or minor is None:
        raise InvalidArgument(f"{field}: major and minor are required")
    return major, minor


# --- file access --------------------------------------------------------------------------------


def write_file(path: str, value: str) -> None:
    """Write one value to an existing cgroup file; OSError propagates for the caller to map."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_int(path: str) -> int | None:
    """An integer file; "max" (v2 for unlimited) reads as None."""
    text = read_text(path)
    if text is None:
        return None
    text = text.strip()
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def read_flat_keyed(path: str) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, memory.events, …)."""
    out: dict[str, int] = {}
    text = read_text(path)
    if not text:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def map_os_error(e: OSError, what: str) -> SkiffError:
    """cgroupfs errors → the closed set. `what` names the field or operation and the file."""
    reason = os.strerror(e.errno) if e.errno else str(e)
    if e.errno in (errno.EINVAL, errno.ERANGE, errno.EOVERFLOW):
        return InvalidArgument(f"{what}: the kernel rejected the value: {reason}")
    if e.errno == errno.EBUSY:
        return Conflict(f"{what}: {reason}")
    if e.errno == errno.ESRCH:
        return NotFound(f"{what}: no such process")
    if e.errno in (
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOSPC,
    ):
        return FailedPrecondition(f"{what}: {reason}")
    return Internal(f"{what}: {reason}")


def _one(
    w: Write, dir_of: Callable[[str], str | None], root: str, fds: dict[str, int] | None = None
) -> None:
    directory = dir_of(w.controller)
    if directory is None:
        raise FailedPrecondition(
            f"{w.field}: cgroup controller '{w.controller}' is not available under {root}"
        )
    for file, value in w.choices:
        path = os.path.join(directory, file)
        try:
            if fds is None:
                write_file(path, value)
            else:
                fd = fds.get(path)
                if fd is None:
                    fd = fds[path] = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
                os.write(fd, value.encode())
            return
        except FileNotFoundError:
            continue
        except OSError as e:
            raise map_os_error(e, f"{w.field}: write {value!r} to {path}") from None
    files = ", ".join(f for f, _ in w.choices)
    if w.optional:
        log_debug(f"{w.field}: skipped, {directory} has no {files}")
        return
    raise FailedPrecondition(
        f"{w.field}: cgroup controller '{w.controller}' is not available for {directory} "
        f"(no {files})"
    )


def execute(steps: list[Step], dir_of: Callable[[str], str | None], root: str) -> None:
    """Carry out a plan. `dir_of(controller)` is the cgroup directory for that controller.

    A file that plain writes hit more than once (devices.allow takes one rule per write: ~25
    for a Docker container) is opened once; each write is still one value, as the kernel
    parses it. Everything else goes through `write_file`, one open per value."""
    seen: set[tuple[str, str]] = set()
    repeated: set[tuple[str, str]] = set()
    for step in steps:
        if isinstance(step, Write) and len(step.choices) == 1:
            key = (step.controller, step.choices[0][0])
            (repeated if key in seen else seen).add(key)
    fds: dict[str, int] = {}
    try:
        for step in steps:
            if isinstance(step, Write):
                many = len(step.choices) == 1 and (step.controller, step.choices[0][0]) in repeated
                _one(step, dir_of, root, fds if many else None)
                continue
            try:
                for w in step.writes:
                    _one(w, dir_of, root)
            except InvalidArgument:
                for w in reversed(step.writes):
                    _one(w, dir_of, root)
    finally:
        for fd in fds.values():
            os.close(fd)


# --- directories --------------------------------------------------------------------------------


def make_dirs(path: str, stop: str) -> list[str]:
    """mkdir -p `path` below the existing `stop`; returns the directories it created, top first.

    Retries when a concurrent destroy removes a shared parent (the `skiff` subtree) mid-way.
    """
    for _attempt in range(5):
        created: list[str] = []
        missing: list[str] = []
        cur = path
        while cur != stop and not os.path.isdir(cur):
            missing.append(cur)
            parent = os.path.dirname(cur)
            if parent == cur:
                break
            cur = parent
        try:
            for d in reversed(missing):
                try:
                    os.mkdir(d, 0o755)
                    created.append(d)
                except FileExistsError:
                    pass
            return created
        except FileNotFoundError:
            continue
        except OSError as e:
            raise map_os_error(e, f"cgroup: mkdir {path}") from None
    raise Conflict(f"cgroup: mkdir {path}: a parent kept disappearing")


def walk_bottom_up(top: str) -> Iterator[str]:
    """`top` and every cgroup below it, deepest first."""
    try:
        entries = list(os.scandir(top))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from walk_bottom_up(entry.path)
    yield top


def walk_top_down(top: str) -> Iterator[str]:
    try:
        entries = list(os.scandir(top))
    except (FileNotFoundError, NotADirectoryError):
        return
    yield top
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from walk_top_down(entry.path)


def remove_tree(top: str, *, timeout: float = 1.0) -> None:
    """rmdir `top` and its sub-cgroups, deepest first, retrying EBUSY for up to `timeout` s."""
    try:
        os.rmdir(top)  # the common case, a leaf: no listing of its control files needed
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    deadline = time.monotonic() + timeout
    for d in walk_bottom_up(top):
        delay = 0.001
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno == errno.ENOTEMPTY and _remove_plain_files(d):
                    continue
                if e.errno in (errno.EBUSY, errno.ENOTEMPTY) and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
                    continue
                raise map_os_error(e, f"cgroup: rmdir {d}") from None


def _remove_plain_files(d: str) -> bool:
    """Empty a fake cgroup directory (tests build cgroupfs out of regular files).

    Only reached on ENOTEMPTY, which a real cgroupfs never returns (it removes its control files
    with the directory and says EBUSY for children or members), so host files are never touched.
    """
    removed = False
    try:
        for entry in os.scandir(d):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed = True
    except OSError:
        return False
    return removed


def prune_empty(dirs: list[str]) -> None:
    """rmdir each of `dirs` (deepest first) if empty; a busy or non-empty one is left alone."""
    for d in sorted(dirs, key=len, reverse=True):
        try:
            os.rmdir(d)
        except FileNotFoundError:
            continue
        except OSError as e:
            if e.errno == errno.ENOTEMPTY and not _has_subdirs(d) and _remove_plain_files(d):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            continue


def _has_subdirs(d: str) -> bool:
    try:
        return any(e.is_dir(follow_symlinks=False) for e in os.scandir(d))
    except OSError:
        return True


def read_procs(directory: str) -> list[int]:
    text = read_text(os.path.join(directory, "cgroup.procs"))
    if not text:
        return []
    return [int(x) for x in text.split()]
