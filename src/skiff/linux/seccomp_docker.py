"""Docker's seccomp profile format → the OCI `linux.seccomp` section.

Docker profiles (e.g. moby's profiles/seccomp/default.json) differ from OCI in three ways:
`archMap` lists sub-architectures per native architecture; each syscall entry may carry
`includes`/`excludes` conditions on capabilities, architectures and a minimum kernel; and the old
single `name` field. This module applies Docker's rules for one container (its bounding
capabilities, the host architecture and kernel) and returns a plain OCI section that
`skiff.linux.seccomp.compile()` accepts. Pure data, no I/O beyond reading `uname`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from skiff.errors import InvalidArgument

__all__ = ["docker_profile_to_oci", "go_arch"]

# Go's GOARCH (what Docker compares `includes.arches` with) → the native seccomp architecture.
_NATIVE_TO_SECCOMP = {
    "amd64": "SCMP_ARCH_X86_64",
    "386": "SCMP_ARCH_X86",
    "arm64": "SCMP_ARCH_AARCH64",
    "arm": "SCMP_ARCH_ARM",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mipsel64n32": "SCMP_ARCH_MIPSEL64N32",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64",
    "loong64": "SCMP_ARCH_LOONGARCH64",
}
_UNAME_TO_GO = {
    "x86_64": "amd64",
    "i386": "386",
    "i686": "386",
    "aarch64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64": "mips64",
    "loongarch64": "loong64",
}
_SECCOMP_TO_GO = {v: k for k, v in _NATIVE_TO_SECCOMP.items()}


def go_arch(arch: str) -> str:
    """Normalise an architecture name (GOARCH, `uname -m` or SCMP_ARCH_*) to GOARCH."""
    if arch in _NATIVE_TO_SECCOMP:
        return arch
    if arch in _UNAME_TO_GO:
        return _UNAME_TO_GO[arch]
    if arch in _SECCOMP_TO_GO:
        return _SECCOMP_TO_GO[arch]
    raise InvalidArgument(f"seccomp profile: unknown architecture {arch!r}")


def _kernel_tuple(release: str, field: str) -> tuple[int, ...]:
    m = re.match(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?", release)
    if not m:
        raise InvalidArgument(f"{field}: {release!r} is not a kernel version like '4.8'")
    return tuple(int(g) if g else 0 for g in m.groups())


def _caps(caps: Iterable[str]) -> set[str]:
    out = set()
    for c in caps:
        c = c.upper()
        out.add(c if c.startswith("CAP_") else "CAP_" + c)
    return out


def _str_list(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{field}: must be a list of strings, got {value!r}")
    return value


def docker_profile_to_oci(
    profile: Mapping[str, Any],
    caps: Collection[str],
    arch: str,
    *,
    kernel: str | None = None,
) -> dict[str, Any]:
    """Apply Docker's includes/excludes rules and return an OCI `linux.seccomp` section.

    `caps`: the container's bounding capabilities ("CAP_SYS_ADMIN" or "SYS_ADMIN");
    `arch`: the host architecture (GOARCH, `uname -m` or SCMP_ARCH_*);
    `kernel`: the kernel release to test `minKernel` against (default: this host's).
    """
    field = "seccomp profile"
    if not isinstance(profile, Mapping):
        raise InvalidArgument(f"{field}: must be an object, got {type(profile).__name__}")
    goarch = go_arch(arch)
    have = _caps(caps)
    running = _kernel_tuple(kernel if kernel is not None else os.uname().release, "kernel")

    if "defaultAction" not in profile:
        raise InvalidArgument(f"{field}.defaultAction: is required")
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    for key in ("defaultErrnoRet", "listenerPath", "listenerMetadata", "flags"):
        if profile.get(key) is not None:
            out[key] = profile[key]

    arches = _str_list(profile.get("architectures"), f"{field}.architectures")
    arch_map = profile.get("archMap") or []
    if arches and arch_map:
        raise InvalidArgument(f"{field}: 'architectures' and 'archMap' cannot both be set")
    if arch_map:
        if not isinstance(arch_map, list):
            raise InvalidArgument(f"{field}.archMap: must be a list, got {arch_map!r}")
        native = _NATIVE_TO_SECCOMP.get(goarch)
        for i, entry in enumerate(arch_map):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("architecture"), str):
                raise InvalidArgument(f"{field}.archMap[{i}].architecture: is required")
            if entry["architecture"] == native:
                arches.append(entry["architecture"])
                arches.extend(
                    _str_list(
                        entry.get("subArchitectures"), f"{field}.archMap[{i}].subArchitectures"
                    )
                )
    if arches:
        out["architectures"] = arches

    syscalls = profile.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise InvalidArgument(f"{field}.syscalls: must be a list, got {syscalls!r}")
    calls: list[dict[str, Any]] = []
    for i, call in enumerate(syscalls):
        cfield = f"{field}.syscalls[{i}]"
        if not isinstance(call, Mapping):
            raise InvalidArgument(f"{cfield}: must be an object, got {call!r}")
        names = _str_list(call.get("names"), f"{cfield}.names")
        if call.get("name"):
            if names:
                raise InvalidArgument(f"{cfield}: 'name' and 'names' cannot both be set")
            names = [call["name"]]
        if not _selected(call, cfield, goarch, have, running):
            continue
        new: dict[str, Any] = {"names": list(names), "action": call.get("action")}
        if call.get("errnoRet") is not None:
            new["errnoRet"] = call["errnoRet"]
        if call.get("args"):
            new["args"] = [dict(a) for a in call["args"]]
        calls.append(new)
    out["syscalls"] = calls
    return out


def _selected(
    call: Mapping[str, Any],
    field: str,
    goarch: str,
    caps: Collection[str],
    running: tuple[int, ...],
) -> bool:
    excludes = call.get("excludes") or {}
    includes = call.get("includes") or {}
    if not isinstance(excludes, Mapping) or not isinstance(includes, Mapping):
        raise InvalidArgument(f"{field}: 'includes' and 'excludes' must be objects")
    if goarch in _str_list(excludes.get("arches"), f"{field}.excludes.arches"):
        return False
    if any(c in caps for c in _caps(_str_list(excludes.get("caps"), f"{field}.excludes.caps"))):
        return False
    if excludes.get("minKernel") and running >= _kernel_tuple(
        str(excludes["minKernel"]), f"{field}.excludes.minKernel"
    ):
        return False
    inc_arches = _str_list(includes.get("arches"), f"{field}.includes.arches")
    if inc_arches and goarch not in inc_arches:
        return False
    if not all(c in caps for c in _caps(_str_list(includes.get("caps"), f"{field}.includes.caps"))):
        return False
    minimum = includes.get("minKernel")
    return not minimum or running >= _kernel_tuple(str(minimum), f"{field}.includes.minKernel")
