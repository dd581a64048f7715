"""`update`: change a running container's resource limits (linux.resources, runc's flags)."""

from __future__ import annotations

import sys

from skiff.errors import FailedPrecondition, InvalidArgument, SkiffError
from skiff.runtime import jsonio
from skiff.runtime import state as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_bytes(flag: str, text: str) -> int:
    """A size like runc's (docker/go-units RAMInBytes): 512, 512k, 64m, 1g; -1 = unlimited."""
    raw = text.strip().lower()
    if raw == "-1":
        return -1
    if raw.endswith("b"):
        raw = raw[:-1]
    if raw.endswith("i"):
        raw = raw[:-1]
    unit = raw[-1] if raw and raw[-1] in "kmgtp" else ""
    number = raw[:-1] if unit else raw
    try:
        value = float(number)
    except ValueError:
        raise InvalidArgument(f"update --{flag}: invalid size {text!r}") from None
    return int(value * _UNITS[unit])


def _int(flag: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"update --{flag}: want an integer, got {text!r}") from None


def resources_from_flags(flags: Mapping[str, object]) -> dict[str, Any]:
    res: dict[str, Any] = {}

    def put(section: str, key: str, value: object) -> None:
        res.setdefault(section, {})[key] = value

    for flag, section, key in (
        ("memory", "memory", "limit"),
        ("memory-reservation", "memory", "reservation"),
        ("memory-swap", "memory", "swap"),
        ("kernel-memory", "memory", "kernel"),
    ):
        if flag in flags:
            put(section, key, parse_bytes(flag, str(flags[flag])))
    for flag, section, key in (
        ("cpu-quota", "cpu", "quota"),
        ("cpu-period", "cpu", "period"),
        ("cpu-shares", "cpu", "shares"),
        ("cpu-rt-period", "cpu", "realtimePeriod"),
        ("cpu-rt-runtime", "cpu", "realtimeRuntime"),
        ("pids-limit", "pids", "limit"),
        ("blkio-weight", "blockIO", "weight"),
    ):
        if flag in flags:
            put(section, key, _int(flag, str(flags[flag])))
    if "cpuset-cpus" in flags:
        put("cpu", "cpus", str(flags["cpuset-cpus"]))
    if "cpuset-mems" in flags:
        put("cpu", "mems", str(flags["cpuset-mems"]))
    return res


def read_resources(source: str) -> dict[str, Any]:
    try:
        if source == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as f:
                raw = f.read()
    except OSError as err:
        raise InvalidArgument(f"update --resources {source}: {err.strerror}") from None
    try:
        value = jsonio.loads(raw)
    except ValueError as err:
        raise InvalidArgument(f"update --resources: malformed JSON: {err}") from None
    if not isinstance(value, dict):
        raise InvalidArgument("update --resources: must be a JSON object (linux.resources)")
    return value


def update(root: str, container_id: str, flags: Mapping[str, object]) -> None:
    state = st.ContainerState.load(root, container_id)
    status = state.status()
    if status == st.STOPPED:
        raise FailedPrecondition(f"cannot update container {container_id}: it is stopped")
    source = flags.get("resources")
    resources = read_resources(str(source)) if source else resources_from_flags(flags)
    if not state.cgroup:
        raise FailedPrecondition(f"container {container_id} has no cgroup to update")
    manager = state.cgroup_manager()
    try:
        manager.apply(resources)
    except SkiffError as err:
        raise err.wrap(f"update {container_id}") from err
    linux = state.spec.setdefault("linux", {})
    merged = dict(linux.get("resources") or {})
    for key, value in resources.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    linux["resources"] = merged
    state.save()
