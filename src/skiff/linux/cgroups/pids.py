"""The pids controller: pids.max (≤ 0 means no limit, as in runc); pids.current."""

from __future__ import annotations

import os

from skiff.errors import InvalidArgument
from skiff.linux.cgroups.fs import RESOURCES, Step, opt_int, read_int, section, write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

FIELD = f"{RESOURCES}.pids"


def plan(resources: Mapping[str, Any], version: int) -> list[Step]:
    sec = section(resources, "pids")
    if sec is None:
        return []
    limit = opt_int(sec, "limit", f"{FIELD}.limit")
    if limit is None:
        raise InvalidArgument(f"{FIELD}.limit: is required")
    return [write("pids", "pids.max", limit if limit > 0 else "max", f"{FIELD}.limit")]


def stats(directory: str, version: int) -> dict[str, Any] | None:
    current = read_int(os.path.join(directory, "pids.current"))
    if current is None:
        return None
    return {"current": current, "limit": read_int(os.path.join(directory, "pids.max"))}
