"""The memory controller: limit, reservation, swap, swappiness, OOM killer; memory stats.

v1 files: memory.limit_in_bytes, memory.memsw.limit_in_bytes (memory+swap), memory.soft_limit_in_bytes,
memory.swappiness, memory.oom_control, memory.kmem.tcp.limit_in_bytes.
v2 files: memory.max, memory.swap.max (swap only: OCI swap - limit, as runc converts), memory.low.
"""

from __future__ import annotations

import os

from skiff.errors import InvalidArgument
from skiff.linux.cgroups.fs import (
    RESOURCES,
    Ordered,
    Step,
    log_warning,
    opt_bool,
    opt_int,
    read_flat_keyed,
    read_int,
    section,
    write,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

FIELD = f"{RESOURCES}.memory"
MIN_LIMIT = 6 * 1024 * 1024  # Docker's minimum; below it a container cannot even start
UNLIMITED_V1 = 1 << 62  # v1 reports "no limit" as PAGE_COUNTER_MAX pages, ~2^63


def _v2_value(value: int) -> str:
    return "max" if value == -1 else str(value)


def plan(resources: Mapping[str, Any], version: int) -> list[Step]:
    mem = section(resources, "memory")
    if mem is None:
        return []
    limit = opt_int(mem, "limit", f"{FIELD}.limit")
    if limit is not None and limit != 0 and limit != -1 and limit < MIN_LIMIT:
        raise InvalidArgument(f"{FIELD}.limit: must be ≥ 6 MiB or -1, got {limit}")
    swap = opt_int(mem, "swap", f"{FIELD}.swap", lo=-1, rule="must be ≥ 0 or -1")
    reservation = opt_int(
        mem, "reservation", f"{FIELD}.reservation", lo=-1, rule="must be ≥ 0 or -1"
    )
    swappiness = opt_int(mem, "swappiness", f"{FIELD}.swappiness", lo=-1, hi=100)
    kernel = opt_int(mem, "kernel", f"{FIELD}.kernel")
    kernel_tcp = opt_int(mem, "kernelTCP", f"{FIELD}.kernelTCP", lo=-1, rule="must be ≥ 0 or -1")
    no_oom_killer = opt_bool(mem, "disableOOMKiller", f"{FIELD}.disableOOMKiller")
    use_hierarchy = opt_bool(mem, "useHierarchy", f"{FIELD}.useHierarchy")
    limit = limit or None  # 0 means "not set", as in runc
    swap = swap or None
    if swap is not None and swap != -1 and limit is not None and limit != -1 and swap < limit:
        raise InvalidArgument(
            f"{FIELD}.swap: memory+swap ({swap}) must be ≥ memory.limit ({limit}) or -1"
        )
    if kernel:
        log_warning(f"{FIELD}.kernel: kernel memory limits are ignored (deprecated by the kernel)")

    steps: list[Step] = []
    if version == 1:
        pair = []
        if limit is not None:
            pair.append(write("memory", "memory.limit_in_bytes", limit, f"{FIELD}.limit"))
        if swap is not None:
            pair.append(
                write(
                    "memory",
                    "memory.memsw.limit_in_bytes",
                    swap,
                    f"{FIELD}.swap",
                    optional=swap == -1,  # no swap accounting: swap is not limited anyway
                )
            )
        if len(pair) == 2:
            steps.append(Ordered(tuple(pair)))
        else:
            steps.extend(pair)
        if reservation:
            steps.append(
                write("memory", "memory.soft_limit_in_bytes", reservation, f"{FIELD}.reservation")
            )
        if kernel_tcp:
            steps.append(
                write("memory", "memory.kmem.tcp.limit_in_bytes", kernel_tcp, f"{FIELD}.kernelTCP")
            )
        if swappiness is not None and swappiness != -1:
            steps.append(write("memory", "memory.swappiness", swappiness, f"{FIELD}.swappiness"))
        if no_oom_killer:
            steps.append(write("memory", "memory.oom_control", 1, f"{FIELD}.disableOOMKiller"))
        if use_hierarchy:
            steps.append(write("memory", "memory.use_hierarchy", 1, f"{FIELD}.useHierarchy"))
        return steps

    if swap is not None:
        if swap == -1:
            steps.append(write("memory", "memory.swap.max", "max", f"{FIELD}.swap", optional=True))
        elif limit is None or limit == -1:
            raise InvalidArgument(
                f"{FIELD}.swap: cgroup v2 cannot limit swap without a memory limit"
            )
        else:
            steps.append(write("memory", "memory.swap.max", swap - limit, f"{FIELD}.swap"))
    if limit is not None:
        steps.append(write("memory", "memory.max", _v2_value(limit), f"{FIELD}.limit"))
    if reservation:
        steps.append(write("memory", "memory.low", _v2_value(reservation), f"{FIELD}.reservation"))
    if kernel_tcp:
        log_warning(f"{FIELD}.kernelTCP: ignored on cgroup v2 (no such limit)")
    if swappiness is not None and swappiness != -1:
        log_warning(f"{FIELD}.swappiness: ignored on cgroup v2 (no per-cgroup swappiness)")
    if no_oom_killer:
        log_warning(
            f"{FIELD}.disableOOMKiller: ignored on cgroup v2 (the OOM killer cannot be disabled)"
        )
    return steps


def _limit(value: int | None) -> int | None:
    return None if value is None or value >= UNLIMITED_V1 else value


def stats(directory: str, version: int) -> dict[str, Any] | None:
    """usage, max_usage, limit (None: unlimited), failcnt, oom_kill, swap usage, stat map."""
    if version == 1:
        usage = read_int(os.path.join(directory, "memory.usage_in_bytes"))
        if usage is None:
            return None
        oom = read_flat_keyed(os.path.join(directory, "memory.oom_control"))
        memsw = read_int(os.path.join(directory, "memory.memsw.usage_in_bytes"))
        return {
            "usage": usage,
            "max_usage": read_int(os.path.join(directory, "memory.max_usage_in_bytes")) or 0,
            "limit": _limit(read_int(os.path.join(directory, "memory.limit_in_bytes"))),
            "failcnt": read_int(os.path.join(directory, "memory.failcnt")) or 0,
            "oom_kill": oom.get("oom_kill", 0),
            "under_oom": bool(oom.get("under_oom", 0)),
            "swap_usage": (memsw - usage) if memsw is not None else None,
            "stats": read_flat_keyed(os.path.join(directory, "memory.stat")),
        }
    usage = read_int(os.path.join(directory, "memory.current"))
    if usage is None:
        return None
    events = read_flat_keyed(os.path.join(directory, "memory.events"))
    return {
        "usage": usage,
        "max_usage": read_int(os.path.join(directory, "memory.peak")) or 0,
        "limit": read_int(os.path.join(directory, "memory.max")),
        "failcnt": events.get("max", 0),
        "oom_kill": events.get("oom_kill", 0),
        "under_oom": False,
        "swap_usage": read_int(os.path.join(directory, "memory.swap.current")),
        "stats": read_flat_keyed(os.path.join(directory, "memory.stat")),
    }
