"""The cpu controller (and v1 cpuacct for usage): shares/weight, CFS quota/period/burst,
realtime runtime/period (v1 only), idle; CPU usage and throttling stats.

v2 conversions follow runc: cpu.weight = 1 + ((shares - 2) * 9999) / 262142, and
cpu.max = "<quota or max> <period>".
"""

from __future__ import annotations

import os

from skiff.errors import FailedPrecondition, InvalidArgument
from skiff.linux.cgroups.fs import (
    RESOURCES,
    Ordered,
    Step,
    Write,
    opt_int,
    read_flat_keyed,
    read_int,
    read_text,
    section,
    write,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

FIELD = f"{RESOURCES}.cpu"
U64 = (1 << 64) - 1


def shares_to_weight(shares: int) -> int:
    """runc's mapping of v1 cpu.shares [2, 262144] onto v2 cpu.weight [1, 10000]."""
    return 1 + ((shares - 2) * 9999) // 262142


def _add_pair(steps: list[Step], pair: list[Write]) -> None:
    """Two related limits the kernel checks against each other: order decided at write time."""
    if len(pair) == 2:
        steps.append(Ordered((pair[0], pair[1])))
    else:
        steps.extend(pair)


def plan(resources: Mapping[str, Any], version: int) -> list[Step]:
    cpu = section(resources, "cpu")
    if cpu is None:
        return []
    shares_rule = "must be between 2 and 262144 (0: unset)"
    shares = opt_int(cpu, "shares", f"{FIELD}.shares", lo=0, hi=262144, rule=shares_rule)
    if shares == 1:
        raise InvalidArgument(f"{FIELD}.shares: {shares_rule}, got 1")
    quota_rule = "must be ≥ 1000 (µs) or -1"
    quota = opt_int(cpu, "quota", f"{FIELD}.quota", lo=-1, rule=quota_rule)
    if quota is not None and 0 < quota < 1000:
        raise InvalidArgument(f"{FIELD}.quota: {quota_rule}, got {quota}")
    period_rule = "must be between 1000 and 1000000 (µs)"
    period = opt_int(cpu, "period", f"{FIELD}.period", lo=0, hi=1_000_000, rule=period_rule)
    if period is not None and 0 < period < 1000:
        raise InvalidArgument(f"{FIELD}.period: {period_rule}, got {period}")
    burst = opt_int(cpu, "burst", f"{FIELD}.burst", lo=0, hi=U64)
    rt_runtime = opt_int(cpu, "realtimeRuntime", f"{FIELD}.realtimeRuntime", lo=-1)
    rt_period = opt_int(cpu, "realtimePeriod", f"{FIELD}.realtimePeriod", lo=0, hi=U64)
    idle = opt_int(cpu, "idle", f"{FIELD}.idle", lo=0, hi=1)

    steps: list[Step] = []
    if version == 1:
        if shares:
            steps.append(write("cpu", "cpu.shares", shares, f"{FIELD}.shares"))
        pair = []
        if period:
            pair.append(write("cpu", "cpu.cfs_period_us", period, f"{FIELD}.period"))
        if quota:
            pair.append(write("cpu", "cpu.cfs_quota_us", quota, f"{FIELD}.quota"))
        _add_pair(steps, pair)
        if burst is not None:
            steps.append(write("cpu", "cpu.cfs_burst_us", burst, f"{FIELD}.burst"))
        rt = []
        if rt_period:
            rt.append(write("cpu", "cpu.rt_period_us", rt_period, f"{FIELD}.realtimePeriod"))
        if rt_runtime:
            rt.append(write("cpu", "cpu.rt_runtime_us", rt_runtime, f"{FIELD}.realtimeRuntime"))
        _add_pair(steps, rt)
        if idle is not None:
            steps.append(write("cpu", "cpu.idle", idle, f"{FIELD}.idle"))
        return steps

    if rt_runtime or rt_period:
        name = "realtimeRuntime" if rt_runtime else "realtimePeriod"
        raise FailedPrecondition(
            f"{FIELD}.{name}: cgroup v2 has no realtime CPU controller (use cgroup v1)"
        )
    if shares:
        steps.append(write("cpu", "cpu.weight", shares_to_weight(shares), f"{FIELD}.shares"))
    if quota or period:
        value = str(quota) if quota and quota > 0 else "max"
        if period:
            value += f" {period}"
        steps.append(
            write("cpu", "cpu.max", value, f"{FIELD}.quota" if quota else f"{FIELD}.period")
        )
    if burst is not None:
        steps.append(write("cpu", "cpu.max.burst", burst, f"{FIELD}.burst"))
    if idle is not None:
        steps.append(write("cpu", "cpu.idle", idle, f"{FIELD}.idle"))
    return steps


def _ticks_to_ns(ticks: int) -> int:
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def stats_v1(cpu_dir: str | None, cpuacct_dir: str | None) -> dict[str, Any] | None:
    usage: dict[str, Any] | None = None
    if cpuacct_dir is not None:
        total = read_int(os.path.join(cpuacct_dir, "cpuacct.usage"))
        if total is not None:
            per_cpu_text = read_text(os.path.join(cpuacct_dir, "cpuacct.usage_percpu")) or ""
            user = read_int(os.path.join(cpuacct_dir, "cpuacct.usage_user"))
            system = read_int(os.path.join(cpuacct_dir, "cpuacct.usage_sys"))
            if user is None or system is None:
                ticks = read_flat_keyed(os.path.join(cpuacct_dir, "cpuacct.stat"))
                user = _ticks_to_ns(ticks.get("user", 0))
                system = _ticks_to_ns(ticks.get("system", 0))
            usage = {
                "total": total,
                "per_cpu": [int(x) for x in per_cpu_text.split()],
                "user": user,
                "system": system,
            }
    throttling = None
    if cpu_dir is not None:
        st = read_flat_keyed(os.path.join(cpu_dir, "cpu.stat"))
        if st:
            throttling = {
                "periods": st.get("nr_periods", 0),
                "throttled_periods": st.get("nr_throttled", 0),
                "throttled_time": st.get("throttled_time", 0),
            }
    if usage is None and throttling is None:
        return None
    return {
        "usage": usage or {"total": 0, "per_cpu": [], "user": 0, "system": 0},
        "throttling": throttling or {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def stats_v2(directory: str) -> dict[str, Any] | None:
    st = read_flat_keyed(os.path.join(directory, "cpu.stat"))
    if "usage_usec" not in st:
        return None
    return {
        "usage": {
            "total": st["usage_usec"] * 1000,
            "per_cpu": [],  # v2 has no per-CPU accounting
            "user": st.get("user_usec", 0) * 1000,
            "system": st.get("system_usec", 0) * 1000,
        },
        "throttling": {
            "periods": st.get("nr_periods", 0),
            "throttled_periods": st.get("nr_throttled", 0),
            "throttled_time": st.get("throttled_usec", 0) * 1000,
        },
    }
