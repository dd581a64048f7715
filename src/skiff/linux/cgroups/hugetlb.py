"""The hugetlb controller: per page size limits (hugetlb.<size>.limit_in_bytes / .max)."""

from __future__ import annotations

import os
from _collections_abc import Mapping  # collections.abc.Mapping, minus 1 ms of importing collections

from skiff.errors import InvalidArgument
from skiff.linux.cgroups.fs import RESOURCES, Step, opt_int, opt_list, read_int, write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FIELD = f"{RESOURCES}.hugepageLimits"


def _page_size(value: Any, field: str) -> str:
    if (
        not isinstance(value, str)
        or len(value) < 3
        or value[-2:] not in ("KB", "MB", "GB")
        or not value[:-2].isdigit()
        or value[0] == "0"
    ):
        raise InvalidArgument(f"{field}: must look like '2MB' or '1GB', got {value!r}")
    return value


def plan(resources: Mapping[str, Any], version: int) -> list[Step]:
    steps: list[Step] = []
    for i, entry in enumerate(opt_list(resources, "hugepageLimits", FIELD)):
        field = f"{FIELD}[{i}]"
        if not isinstance(entry, Mapping):
            raise InvalidArgument(f"{field}: must be an object, got {entry!r}")
        size = _page_size(entry.get("pageSize"), f"{field}.pageSize")
        limit = opt_int(entry, "limit", f"{field}.limit", lo=0)
        if limit is None:
            raise InvalidArgument(f"{field}.limit: is required")
        file = f"hugetlb.{size}.limit_in_bytes" if version == 1 else f"hugetlb.{size}.max"
        steps.append(write("hugetlb", file, limit, f"{field}.limit"))
    return steps


def stats(directory: str, version: int) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    usage_suffix = ".usage_in_bytes" if version == 1 else ".current"
    for name in names:
        if name.startswith("hugetlb.") and name.endswith(usage_suffix) and name.count(".") == 2:
            size = name.split(".")[1]
            if version == 1:
                out[size] = {
                    "usage": read_int(os.path.join(directory, name)) or 0,
                    "max_usage": read_int(
                        os.path.join(directory, f"hugetlb.{size}.max_usage_in_bytes")
                    )
                    or 0,
                    "failcnt": read_int(os.path.join(directory, f"hugetlb.{size}.failcnt")) or 0,
                }
            else:
                out[size] = {
                    "usage": read_int(os.path.join(directory, name)) or 0,
                    "max_usage": 0,
                    "failcnt": 0,
                }
    return out or None
