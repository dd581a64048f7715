"""Freezing: v1 freezer.state (THAWED/FREEZING/FROZEN), v2 cgroup.freeze + cgroup.events."""

from __future__ import annotations

import os
import time

from skiff.errors import FailedPrecondition, Unavailable
from skiff.linux.cgroups.fs import map_os_error, read_flat_keyed, read_text, write_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

TIMEOUT = 10.0


def _write(path: str, value: str) -> None:
    try:
        write_file(path, value)
    except FileNotFoundError:
        raise FailedPrecondition(
            f"cgroup: freeze: {path} does not exist (freezer not available)"
        ) from None
    except OSError as e:
        raise map_os_error(e, f"cgroup: write {value!r} to {path}") from None


def _wait(check: Callable[[], bool], what: str, rewrite: Callable[[], None]) -> None:
    deadline = time.monotonic() + TIMEOUT
    delay = 0.0005
    rounds = 0
    while not check():
        if time.monotonic() > deadline:
            raise Unavailable(f"cgroup: {what}: timed out after {TIMEOUT:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
        rounds += 1
        if rounds % 25 == 0:
            rewrite()  # a task forking while we freeze can leave the kernel in FREEZING


def state_v1(directory: str) -> str | None:
    text = read_text(os.path.join(directory, "freezer.state"))
    return None if text is None else text.strip()


def freeze_v1(directory: str) -> None:
    path = os.path.join(directory, "freezer.state")
    _write(path, "FROZEN")
    _wait(
        lambda: state_v1(directory) == "FROZEN",
        f"freeze {directory}",
        lambda: _write(path, "FROZEN"),
    )


def thaw_v1(directory: str) -> None:
    path = os.path.join(directory, "freezer.state")
    _write(path, "THAWED")
    _wait(
        lambda: state_v1(directory) == "THAWED", f"thaw {directory}", lambda: _write(path, "THAWED")
    )


def frozen_v2(directory: str) -> bool:
    return read_flat_keyed(os.path.join(directory, "cgroup.events")).get("frozen") == 1


def freeze_v2(directory: str) -> None:
    path = os.path.join(directory, "cgroup.freeze")
    _write(path, "1")
    _wait(lambda: frozen_v2(directory), f"freeze {directory}", lambda: _write(path, "1"))


def thaw_v2(directory: str) -> None:
    path = os.path.join(directory, "cgroup.freeze")
    _write(path, "0")
    _wait(lambda: not frozen_v2(directory), f"thaw {directory}", lambda: _write(path, "0"))
