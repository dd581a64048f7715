"""linux.resources.unified: raw cgroup v2 files, written as given after the typed settings."""

from __future__ import annotations

from skiff.errors import InvalidArgument
from skiff.linux.cgroups.fs import RESOURCES, Step, section, write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

FIELD = f"{RESOURCES}.unified"


def plan(resources: Mapping[str, Any], version: int) -> list[Step]:
    """On v2 each key is charged to its controller (the part before the dot); on hybrid hosts
    the writes go to the cgroup2 hierarchy, named "unified"."""
    sec = section(resources, "unified")
    if not sec:
        return []
    steps: list[Step] = []
    for key in sorted(sec):
        value = sec[key]
        field = f"{FIELD}[{key!r}]"
        if not isinstance(key, str) or "/" in key or key.startswith(".") or "." not in key:
            raise InvalidArgument(f"{field}: must be a cgroup v2 file name like 'memory.high'")
        if not isinstance(value, str):
            raise InvalidArgument(f"{field}: must be a string, got {value!r}")
        controller = key.split(".", 1)[0] if version == 2 else "unified"
        steps.append(write(controller, key, value, field))
    return steps
