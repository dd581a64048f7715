"""The devices controller: linux.resources.devices allow/deny rules.

v1: each rule, in order, is written to devices.allow or devices.deny ("c 1:3 rwm"); a leading
deny-all rule (as Docker sends) resets the list first, so applying the same rules again gives the
same result. v2 has no devices files: access is decided by a BPF program attached to the
cgroup, built from the same rules by devices_bpf.py.
"""

from __future__ import annotations

from _collections_abc import Mapping  # collections.abc.Mapping, minus 1 ms of importing collections

from skiff.errors import InvalidArgument
from skiff.linux.cgroups.fs import RESOURCES, Step, opt_bool, opt_int, opt_list, write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FIELD = f"{RESOURCES}.devices"


class Rule:
    __slots__ = ("access", "allow", "major", "minor", "type")

    def __init__(
        self, allow: bool, type: str, major: int | None, minor: int | None, access: str
    ) -> None:
        self.allow = allow
        self.type = type
        self.major = major
        self.minor = minor
        self.access = access

    def cgroup_v1(self) -> str:
        if self.type == "a":
            return "a *:* rwm" if self.access == "rwm" else f"a *:* {self.access}"
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


def rules(resources: Mapping[str, Any]) -> list[Rule]:
    out = []
    for i, raw in enumerate(opt_list(resources, "devices", FIELD)):
        field = f"{FIELD}[{i}]"
        if not isinstance(raw, Mapping):
            raise InvalidArgument(f"{field}: must be an object, got {raw!r}")
        allow = opt_bool(raw, "allow", f"{field}.allow")
        if allow is None:
            raise InvalidArgument(f"{field}.allow: is required")
        dev_type = raw.get("type") or "a"
        if dev_type not in ("a", "b", "c"):
            raise InvalidArgument(f"{field}.type: must be 'a', 'b' or 'c', got {dev_type!r}")
        numbers = []
        for key in ("major", "minor"):
            n = opt_int(raw, key, f"{field}.{key}", lo=-1)
            numbers.append(None if n is None or n == -1 else n)
        access = raw.get("access") or "rwm"
        if not isinstance(access, str) or not set(access) <= set("rwm"):
            raise InvalidArgument(
                f"{field}.access: must be a combination of 'r', 'w', 'm', got {access!r}"
            )
        access = "".join(c for c in "rwm" if c in access)
        out.append(Rule(allow, dev_type, numbers[0], numbers[1], access))
    return out


def plan(resources: Mapping[str, Any], version: int) -> list[Step]:
    parsed = rules(resources)
    if not parsed:
        return []
    if version == 1:
        return [
            write(
                "devices",
                "devices.allow" if r.allow else "devices.deny",
                r.cgroup_v1(),
                f"{FIELD}[{i}]",
            )
            for i, r in enumerate(parsed)
        ]
    return []  # v2: V2Manager attaches a BPF program (devices_bpf), not a file write
