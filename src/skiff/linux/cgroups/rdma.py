"""The rdma controller: rdma.max "<device> hca_handle=N hca_object=M" (v1 and v2 alike)."""

from __future__ import annotations

from _collections_abc import Mapping  # collections.abc.Mapping, minus 1 ms of importing collections

from skiff.errors import InvalidArgument
from skiff.linux.cgroups.fs import RESOURCES, Step, opt_int, section, write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FIELD = f"{RESOURCES}.rdma"


def plan(resources: Mapping[str, Any], version: int) -> list[Step]:
    sec = section(resources, "rdma")
    if sec is None:
        return []
    steps: list[Step] = []
    for device, limits in sec.items():
        field = f"{FIELD}.{device}"
        if not isinstance(device, str) or not device or " " in device:
            raise InvalidArgument(f"{FIELD}: {device!r} is not an RDMA device name")
        if not isinstance(limits, Mapping):
            raise InvalidArgument(f"{field}: must be an object, got {limits!r}")
        handles = opt_int(limits, "hcaHandles", f"{field}.hcaHandles", lo=0, hi=(1 << 32) - 1)
        objects = opt_int(limits, "hcaObjects", f"{field}.hcaObjects", lo=0, hi=(1 << 32) - 1)
        if handles is None and objects is None:
            continue
        value = (
            f"{device} hca_handle={'max' if handles is None else handles}"
            f" hca_object={'max' if objects is None else objects}"
        )
        steps.append(write("rdma", "rdma.max", value, field))
    return steps
