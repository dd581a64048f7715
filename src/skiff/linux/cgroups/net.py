"""The v1 net_cls and net_prio controllers (linux.resources.network); v2 has neither."""

from __future__ import annotations

from _collections_abc import Mapping  # collections.abc.Mapping, minus 1 ms of importing collections

from skiff.errors import InvalidArgument
from skiff.linux.cgroups.fs import RESOURCES, Step, opt_int, opt_list, section, write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FIELD = f"{RESOURCES}.network"


def plan(resources: Mapping[str, Any], version: int) -> list[Step]:
    sec = section(resources, "network")
    if sec is None:
        return []
    steps: list[Step] = []
    class_id = opt_int(sec, "classID", f"{FIELD}.classID", lo=0, hi=(1 << 32) - 1)
    if class_id is not None:
        steps.append(write("net_cls", "net_cls.classid", class_id, f"{FIELD}.classID"))
    for i, prio in enumerate(opt_list(sec, "priorities", f"{FIELD}.priorities")):
        field = f"{FIELD}.priorities[{i}]"
        if (
            not isinstance(prio, Mapping)
            or not isinstance(prio.get("name"), str)
            or not prio["name"]
        ):
            raise InvalidArgument(f"{field}.name: must be an interface name")
        value = opt_int(prio, "priority", f"{field}.priority", lo=0, hi=(1 << 32) - 1)
        if value is None:
            raise InvalidArgument(f"{field}.priority: is required")
        steps.append(
            write("net_prio", "net_prio.ifpriomap", f"{prio['name']} {value}", f"{field}.priority")
        )
    return steps
