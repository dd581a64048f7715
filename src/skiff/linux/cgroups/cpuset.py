"""The cpuset controller: cpuset.cpus / cpuset.mems from linux.resources.cpu.

A new v1 cpuset cgroup starts with empty cpus/mems and refuses members until they are set, so
`inherit_from_parent()` copies them down each level skiff creates.
"""

from __future__ import annotations

import os

from skiff.errors import InvalidArgument
from skiff.linux.cgroups.fs import (
    RESOURCES,
    Step,
    map_os_error,
    read_text,
    section,
    write,
    write_file,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

FIELD = f"{RESOURCES}.cpu"
_LIST_CHARS = frozenset("0123456789,- ")


def _cpu_list(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not set(value) <= _LIST_CHARS:
        raise InvalidArgument(f"{field}: must be a list like '0-3,6', got {value!r}")
    for part in value.replace(" ", "").split(","):
        bounds = part.split("-")
        if not part or len(bounds) > 2 or not all(bounds) or int(bounds[0]) > int(bounds[-1]):
            raise InvalidArgument(f"{field}: must be a list like '0-3,6', got {value!r}")
    return value.replace(" ", "")


def plan(resources: Mapping[str, Any], version: int) -> list[Step]:
    cpu = section(resources, "cpu")
    if cpu is None:
        return []
    steps: list[Step] = []
    cpus = _cpu_list(cpu.get("cpus"), f"{FIELD}.cpus")
    mems = _cpu_list(cpu.get("mems"), f"{FIELD}.mems")
    if cpus is not None:
        steps.append(write("cpuset", "cpuset.cpus", cpus, f"{FIELD}.cpus"))
    if mems is not None:
        steps.append(write("cpuset", "cpuset.mems", mems, f"{FIELD}.mems"))
    return steps


def empty_levels(leaf: str, ours: set[str]) -> list[str]:
    """The levels from `leaf` upwards, within `ours`, whose cpuset.cpus or .mems is empty; top first."""
    levels: list[str] = []
    d = leaf
    while d in ours:
        cpus = read_text(os.path.join(d, "cpuset.cpus"))
        mems = read_text(os.path.join(d, "cpuset.mems"))
        if cpus is None or (cpus.strip() and (mems or "").strip()):
            break
        levels.append(d)
        d = os.path.dirname(d)
    return list(reversed(levels))


def inherit_from_parent(directory: str) -> None:
    """v1: give an empty cpuset.cpus/mems the parent's values so processes can join."""
    parent = os.path.dirname(directory)
    for name in ("cpuset.cpus", "cpuset.mems"):
        path = os.path.join(directory, name)
        current = read_text(path)
        if current is None or current.strip():
            continue
        value = (read_text(os.path.join(parent, name)) or "").strip()
        if not value:
            continue
        try:
            write_file(path, value)
        except OSError as e:
            raise map_os_error(e, f"cgroup: copy {name} from {parent}") from None
