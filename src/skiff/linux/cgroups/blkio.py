"""Block I/O: v1 blkio (CFQ or BFQ weights, throttling) and v2 io (io.weight/io.bfq.weight, io.max).

Weights follow runc: v1 and v2 BFQ take the OCI weight [10, 1000] as is; v2 io.weight gets
1 + (weight - 10) * 9999 / 990. Stats are lists of {major, minor, op, value}, the shape of
Docker's blkio_stats.
"""

from __future__ import annotations

import os

from skiff.linux.cgroups.fs import (
    RESOURCES,
    Step,
    Write,
    device_number,
    opt_int,
    opt_list,
    read_text,
    section,
    write,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

FIELD = f"{RESOURCES}.blockIO"
_THROTTLES = (
    ("throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"),
    ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"),
    ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"),
    ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops"),
)


def weight_to_io_weight(weight: int) -> int:
    return 1 + (weight - 10) * 9999 // 990


def _weight(sec: Mapping[str, Any], key: str, field: str) -> int | None:
    value = opt_int(sec, key, field, lo=0, hi=1000, rule="must be between 10 and 1000")
    if value is not None and 0 < value < 10:
        from skiff.errors import InvalidArgument

        raise InvalidArgument(f"{field}: must be between 10 and 1000, got {value}")
    return value or None


def plan(resources: Mapping[str, Any], version: int) -> list[Step]:
    sec = section(resources, "blockIO")
    if sec is None:
        return []
    v1 = version == 1
    ctrl = "blkio" if v1 else "io"
    steps: list[Step] = []
    weight = _weight(sec, "weight", f"{FIELD}.weight")
    leaf = _weight(sec, "leafWeight", f"{FIELD}.leafWeight")
    if weight is not None:
        if v1:
            choices = (("blkio.weight", str(weight)), ("blkio.bfq.weight", str(weight)))
        else:
            choices = (
                ("io.bfq.weight", str(weight)),
                ("io.weight", str(weight_to_io_weight(weight))),
            )
        steps.append(Write(ctrl, choices, f"{FIELD}.weight"))
    if leaf is not None:
        if not v1:
            from skiff.linux.cgroups.fs import log_warning

            log_warning(f"{FIELD}.leafWeight: ignored on cgroup v2 (no leaf weights)")
        else:
            steps.append(write(ctrl, "blkio.leaf_weight", leaf, f"{FIELD}.leafWeight"))
    for i, dev in enumerate(opt_list(sec, "weightDevice", f"{FIELD}.weightDevice")):
        field = f"{FIELD}.weightDevice[{i}]"
        major, minor = device_number(dev, field)
        w = _weight(dev, "weight", f"{field}.weight")
        lw = _weight(dev, "leafWeight", f"{field}.leafWeight")
        if w is not None:
            if v1:
                choices = (
                    ("blkio.weight_device", f"{major}:{minor} {w}"),
                    ("blkio.bfq.weight_device", f"{major}:{minor} {w}"),
                )
            else:
                choices = (
                    ("io.bfq.weight", f"{major}:{minor} {w}"),
                    ("io.weight", f"{major}:{minor} {weight_to_io_weight(w)}"),
                )
            steps.append(Write(ctrl, choices, f"{field}.weight"))
        if lw is not None and v1:
            steps.append(
                write(
                    ctrl, "blkio.leaf_weight_device", f"{major}:{minor} {lw}", f"{field}.leafWeight"
                )
            )
    for key, v1_file, v2_key in _THROTTLES:
        for i, dev in enumerate(opt_list(sec, key, f"{FIELD}.{key}")):
            field = f"{FIELD}.{key}[{i}]"
            major, minor = device_number(dev, field)
            rate = opt_int(dev, "rate", f"{field}.rate", lo=0)
            if rate is None:
                from skiff.errors import InvalidArgument

                raise InvalidArgument(f"{field}.rate: is required")
            if v1:
                steps.append(write(ctrl, v1_file, f"{major}:{minor} {rate}", f"{field}.rate"))
            else:
                value = str(rate) if rate else "max"
                steps.append(
                    write(ctrl, "io.max", f"{major}:{minor} {v2_key}={value}", f"{field}.rate")
                )
    return steps


def _v1_entries(path: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in (read_text(path) or "").splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        out.append(
            {"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])}
        )
    return out


def stats_v1(directory: str) -> dict[str, Any]:
    """The first non-empty of the CFQ, BFQ and throttle counters, as runc picks them."""
    out: dict[str, Any] = {}
    for name in ("io_service_bytes_recursive", "io_serviced_recursive"):
        entries: list[dict[str, Any]] = []
        for prefix in ("blkio.", "blkio.bfq.", "blkio.throttle."):
            entries = _v1_entries(os.path.join(directory, prefix + name))
            if entries:
                break
        out[name] = entries
    return out


def stats_v2(directory: str) -> dict[str, Any]:
    service_bytes: list[dict[str, Any]] = []
    serviced: list[dict[str, Any]] = []
    for line in (read_text(os.path.join(directory, "io.stat")) or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major_s, _, minor_s = parts[0].partition(":")
        major, minor = int(major_s), int(minor_s)
        kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        for key, op, target in (
            ("rbytes", "Read", service_bytes),
            ("wbytes", "Write", service_bytes),
            ("rios", "Read", serviced),
            ("wios", "Write", serviced),
        ):
            if key in kv:
                target.append({"major": major, "minor": minor, "op": op, "value": int(kv[key])})
    return {"io_service_bytes_recursive": service_bytes, "io_serviced_recursive": serviced}
