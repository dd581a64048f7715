"""skiff's default seccomp profile has Docker's semantics: same rules after conversion to OCI."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from skiff.engine import oci, seccomp_default
from skiff.linux.seccomp_docker import docker_profile_to_oci

CAP_SETS = {
    "docker-default": list(oci.DEFAULT_CAPS),
    "default+SYS_ADMIN": [*oci.DEFAULT_CAPS, "CAP_SYS_ADMIN"],
    "default+SYS_PTRACE": [*oci.DEFAULT_CAPS, "CAP_SYS_PTRACE"],
    "default+SYS_TIME+SYS_NICE+SYSLOG": [
        *oci.DEFAULT_CAPS,
        "CAP_SYS_TIME",
        "CAP_SYS_NICE",
        "CAP_SYSLOG",
    ],
    "all": list(oci.ALL_CAPS),
    "none": [],
}
KERNELS = ("6.1.0", "4.4.0")
ARCHES = ("x86_64", "aarch64", "s390x")


def rules(section: dict[str, Any]) -> set[tuple[Any, ...]]:
    """The OCI section as a set of (name, action, errno, args) — order and grouping ignored."""
    out = set()
    for call in section["syscalls"]:
        args = tuple(
            sorted(
                (a["index"], a["op"], int(a["value"]), int(a.get("valueTwo") or 0))
                for a in call.get("args") or []
            )
        )
        for name in call["names"]:
            out.add((name, call["action"], call.get("errnoRet"), args))
    return out


def names_allowed(section: dict[str, Any]) -> set[str]:
    return {r[0] for r in rules(section) if r[1] == "SCMP_ACT_ALLOW" and not r[3]}


@pytest.fixture(scope="module")
def docker_profile(reference_dir: Path) -> dict[str, Any]:
    path = reference_dir / "docker-default-seccomp.json"
    if not path.exists():
        pytest.skip(f"{path} is absent: cannot compare with Docker's default profile")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("caps", list(CAP_SETS), ids=list(CAP_SETS))
def test_same_rules_as_docker(
    docker_profile: dict[str, Any], caps: str, kernel: str, arch: str
) -> None:
    ours = docker_profile_to_oci(seccomp_default.profile(), CAP_SETS[caps], arch, kernel=kernel)
    theirs = docker_profile_to_oci(docker_profile, CAP_SETS[caps], arch, kernel=kernel)
    assert ours["defaultAction"] == theirs["defaultAction"] == "SCMP_ACT_ERRNO"
    assert ours.get("defaultErrnoRet") == theirs.get("defaultErrnoRet") == 1
    assert ours.get("architectures") == theirs.get("architectures")
    mine, docker = rules(ours), rules(theirs)
    assert mine - docker == set(), "rules skiff allows and Docker does not"
    assert docker - mine == set(), "rules Docker has and skiff lacks"


def allowed(caps: Iterable[str], kernel: str = "6.1.0") -> dict[str, Any]:
    return docker_profile_to_oci(seccomp_default.profile(), list(caps), "x86_64", kernel=kernel)


def test_namespace_and_mount_syscalls_need_sys_admin() -> None:
    plain = allowed(oci.DEFAULT_CAPS)
    for name in ("mount", "umount2", "unshare", "setns", "bpf", "sethostname"):
        assert name not in names_allowed(plain)
    clone = [r for r in rules(plain) if r[0] == "clone"]
    assert clone == [("clone", "SCMP_ACT_ALLOW", None, ((0, "SCMP_CMP_MASKED_EQ", 0x7E020000, 0),))]
    assert ("clone3", "SCMP_ACT_ERRNO", 38, ()) in rules(plain)
    admin = allowed([*oci.DEFAULT_CAPS, "CAP_SYS_ADMIN"])
    assert {"mount", "umount2", "unshare", "setns", "clone", "clone3"} <= names_allowed(admin)
    assert not [r for r in rules(admin) if r[0] == "clone3" and r[1] == "SCMP_ACT_ERRNO"]


def test_ptrace_follows_kernel_or_capability() -> None:
    assert "ptrace" in names_allowed(allowed(oci.DEFAULT_CAPS, kernel="5.10"))
    assert "ptrace" not in names_allowed(allowed(oci.DEFAULT_CAPS, kernel="4.4"))
    assert "ptrace" in names_allowed(allowed([*oci.DEFAULT_CAPS, "CAP_SYS_PTRACE"], kernel="4.4"))
    assert "kcmp" not in names_allowed(allowed(oci.DEFAULT_CAPS))


def test_socket_families_alg_and_vsock_refused() -> None:
    socket_rules = sorted(r[3] for r in rules(allowed(oci.DEFAULT_CAPS)) if r[0] == "socket")
    assert socket_rules == [
        ((0, "SCMP_CMP_EQ", 39, 0),),
        ((0, "SCMP_CMP_GT", 40, 0),),
        ((0, "SCMP_CMP_LT", 38, 0),),
    ]


def test_profile_is_a_fresh_copy() -> None:
    p = seccomp_default.profile()
    p["syscalls"].clear()
    assert seccomp_default.profile()["syscalls"]


def test_compiles_with_libseccomp(tmp_path: Path) -> None:
    seccomp = pytest.importorskip("skiff.linux.seccomp")
    try:
        program = seccomp.compile(allowed(oci.DEFAULT_CAPS), cache_dir=str(tmp_path))
    except Exception as err:  # libseccomp missing on this host
        if "libseccomp" in str(err):
            pytest.skip(str(err))
        raise
    assert program and len(program) % 8 == 0
