"""seccomp compile: the programs are run through a small classic-BPF interpreter, so each test
checks what the kernel would decide for a syscall, not just that some bytes came out."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from skiff.errors import InvalidArgument, NotImplementedYet
from skiff.linux import seccomp
from skiff.linux.seccomp_docker import docker_profile_to_oci

pytest.importorskip("ctypes")
try:
    seccomp._libseccomp()
except Exception as e:  # pragma: no cover - hosts without libseccomp2
    pytest.skip(f"libseccomp.so.2 not loadable: {e}", allow_module_level=True)

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_BIT = 0x40000000
NR = {"read": 0, "write": 1, "mkdir": 83, "mount": 165, "clone": 56, "clone3": 435}
NR.update({"personality": 135, "arch_prctl": 158, "unshare": 272, "getpid": 39, "socket": 41})

ALLOW = 0x7FFF0000
KILL_THREAD = 0x00000000
KILL_PROCESS = 0x80000000


def errno_ret(n: int) -> int:
    return 0x00050000 | n


def _alu(op: int, a: int, src: int) -> int:
    results = {
        0x00: a + src,
        0x10: a - src,
        0x40: a | src,
        0x50: a & src,
        0x60: a << src,
        0x70: a >> src,
        0xA0: a ^ src,
    }
    return results[op] & 0xFFFFFFFF


def run_bpf(
    program: bytes, nr: int, arch: int = AUDIT_ARCH_X86_64, args: tuple[int, ...] = ()
) -> int:
    """Evaluate a seccomp cBPF program on one struct seccomp_data; returns the action."""
    full = (list(args) + [0] * 6)[:6]
    data = struct.pack("<iIQ6Q", nr, arch, 0, *full)
    insns = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    a = x = 0
    mem = [0] * 16
    pc = 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        cls = code & 0x07
        if cls == 0x00:  # LD
            mode = code & 0xE0
            if mode == 0x20:
                a = struct.unpack_from("<I", data, k)[0]
            elif mode == 0x00:
                a = k
            elif mode == 0x60:
                a = mem[k]
            else:
                raise AssertionError(f"LD mode {mode:#x}")
        elif cls == 0x01:  # LDX
            x = mem[k] if code & 0xE0 == 0x60 else k
        elif cls == 0x02:
            mem[k] = a
        elif cls == 0x03:
            mem[k] = x
        elif cls == 0x04:  # ALU
            op, src = code & 0xF0, (x if code & 0x08 else k)
            a = _alu(op, a, src)
        elif cls == 0x05:  # JMP
            op, src = code & 0xF0, (x if code & 0x08 else k)
            if op == 0x00:
                pc += k
                continue
            taken = {
                0x10: a == src,
                0x20: a > src,
                0x30: a >= src,
                0x40: bool(a & src),
            }[op]
            pc += jt if taken else jf
        elif cls == 0x06:  # RET
            return k if code & 0x18 == 0 else a
        elif cls == 0x07:
            if code & 0xF8 == 0x80:
                a = x
            else:
                x = a
        else:
            raise AssertionError(f"opcode {code:#x}")


def compile_(profile: dict[str, Any]) -> bytes:
    return seccomp.compile(profile, cache_dir=None)


def test_allow_list_with_errno_default() -> None:
    prog = compile_(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}],
        }
    )
    assert len(prog) % 8 == 0
    assert run_bpf(prog, NR["read"]) == ALLOW
    assert run_bpf(prog, NR["write"]) == ALLOW
    assert run_bpf(prog, NR["mkdir"]) == errno_ret(38)


def test_errno_defaults_to_eperm_and_every_action_maps() -> None:
    calls = [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["mount"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["unshare"], "action": "SCMP_ACT_KILL"},
        {"names": ["getpid"], "action": "SCMP_ACT_TRAP"},
        {"names": ["socket"], "action": "SCMP_ACT_LOG"},
        {"names": ["personality"], "action": "SCMP_ACT_TRACE", "errnoRet": 5},
        {"names": ["clone3"], "action": "SCMP_ACT_KILL_THREAD"},
    ]
    prog = compile_({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": calls})
    assert run_bpf(prog, NR["read"]) == ALLOW
    assert run_bpf(prog, NR["mkdir"]) == errno_ret(1)
    assert run_bpf(prog, NR["mount"]) == KILL_PROCESS
    assert run_bpf(prog, NR["unshare"]) == KILL_THREAD
    assert run_bpf(prog, NR["getpid"]) == 0x00030000
    assert run_bpf(prog, NR["socket"]) == 0x7FFC0000
    assert run_bpf(prog, NR["personality"]) == 0x7FF00005
    assert run_bpf(prog, NR["clone3"]) == KILL_THREAD


def test_args_conditions_and_or_semantics() -> None:
    prog = compile_(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                # same index twice: one rule per condition (OR), as runc does
                {
                    "names": ["personality"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [
                        {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                        {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                    ],
                },
                # different indexes: one rule, conditions ANDed
                {
                    "names": ["socket"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [
                        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                        {"index": 1, "value": 3, "op": "SCMP_CMP_LE"},
                    ],
                },
                {
                    "names": ["clone"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [
                        {"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
                    ],
                },
            ],
        }
    )
    assert run_bpf(prog, NR["personality"], args=(0,)) == ALLOW
    assert run_bpf(prog, NR["personality"], args=(8,)) == ALLOW
    assert run_bpf(prog, NR["personality"], args=(1,)) == errno_ret(1)
    assert run_bpf(prog, NR["socket"], args=(2, 1)) == ALLOW
    assert run_bpf(prog, NR["socket"], args=(2, 5)) == errno_ret(1)
    assert run_bpf(prog, NR["socket"], args=(10, 1)) == errno_ret(1)
    assert run_bpf(prog, NR["clone"], args=(0x11,)) == ALLOW
    assert run_bpf(prog, NR["clone"], args=(0x10000011,)) == errno_ret(1)  # CLONE_NEWUSER


def test_architectures() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}],
    }
    prog = compile_(profile)
    assert run_bpf(prog, NR["read"]) == ALLOW
    assert run_bpf(prog, 3, arch=AUDIT_ARCH_I386) == ALLOW  # read on i386
    assert run_bpf(prog, NR["read"] | X32_BIT) == ALLOW
    assert run_bpf(prog, NR["read"], arch=AUDIT_ARCH_AARCH64) == KILL_THREAD  # bad arch
    only_x86 = compile_({**profile, "architectures": ["SCMP_ARCH_X86"]})
    assert run_bpf(only_x86, 3, arch=AUDIT_ARCH_I386) == ALLOW
    assert run_bpf(only_x86, NR["read"]) == KILL_THREAD


def test_unknown_syscall_names_are_skipped_and_default_rules_dropped() -> None:
    base = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}],
    }
    extra = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["read", "no_such_syscall_skiff"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["write"], "action": "SCMP_ACT_ERRNO"},  # same as the default
        ],
    }
    assert compile_(extra) == compile_(base)


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({}, "linux.seccomp.defaultAction: is required"),
        (
            {"defaultAction": "SCMP_ACT_NOPE"},
            "linux.seccomp.defaultAction: unknown action 'SCMP_ACT_NOPE'",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}] * 3
                + [{"names": ["read"], "action": "SCMP_ACT_FOO"}],
            },
            "linux.seccomp.syscalls[3].action: unknown action 'SCMP_ACT_FOO'",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}],
            },
            "linux.seccomp.syscalls[0].names",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"]}]},
            "linux.seccomp.syscalls[0].action: is required",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}],
            },
            "linux.seccomp.syscalls[0].errnoRet",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}],
                    }
                ],
            },
            "linux.seccomp.syscalls[0].args[0].op: unknown operator 'SCMP_CMP_ABOUT'",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}],
                    }
                ],
            },
            "linux.seccomp.syscalls[0].args[0].index",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}],
                    }
                ],
            },
            "linux.seccomp.syscalls[0].args[0].value",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]},
            "linux.seccomp.architectures[0]",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]},
            "linux.seccomp.flags[0]",
        ),
        (
            {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000},
            "linux.seccomp.defaultErrnoRet",
        ),
    ],
)
def test_invalid_sections_name_the_field(profile: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        compile_(profile)
    assert message in str(info.value)


def test_notify_is_refused_by_name() -> None:
    with pytest.raises(NotImplementedYet, match="SCMP_ACT_NOTIFY"):
        compile_(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}],
            }
        )


def test_flags_of() -> None:
    assert seccomp.flags_of({"defaultAction": "SCMP_ACT_ALLOW"}) == 0
    flags = ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    assert seccomp.flags_of({"flags": flags}) == 2 | 4
    with pytest.raises(NotImplementedYet, match="WAIT_KILLABLE_RECV"):
        seccomp.flags_of({"flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]})


def test_cache_returns_the_stored_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}],
    }
    first = seccomp.compile(profile, cache_dir=str(tmp_path))
    stored = list(tmp_path.glob("*.bpf"))
    assert len(stored) == 1 and stored[0].read_bytes() == first
    assert not list(tmp_path.glob("*.tmp"))

    def no_compile(_: Any) -> bytes:
        raise AssertionError("compiled although cached")

    monkeypatch.setattr(seccomp, "_compile_uncached", no_compile)
    assert seccomp.compile(profile, cache_dir=str(tmp_path)) == first
    with pytest.raises(AssertionError):
        seccomp.compile({**profile, "defaultErrnoRet": 2}, cache_dir=str(tmp_path))


def test_features_use_the_spec_vocabulary(reference_dir: Path) -> None:
    defs = json.loads((reference_dir / "oci-runtime-spec-schema" / "defs-linux.json").read_text())
    enum = {
        k: set(defs["definitions"][k]["enum"])
        for k in ("SeccompAction", "SeccompOperators", "SeccompArch", "SeccompFlag")
    }
    f = seccomp.features()
    assert f["enabled"] is True
    assert set(f["actions"]) <= enum["SeccompAction"] and "SCMP_ACT_NOTIFY" not in f["actions"]
    assert set(f["operators"]) == enum["SeccompOperators"]
    assert "SCMP_ARCH_X86_64" in f["archs"] and set(f["archs"]) <= enum["SeccompArch"]
    assert set(f["knownFlags"]) == enum["SeccompFlag"]
    assert set(f["supportedFlags"]) <= set(f["knownFlags"])


# --- Docker's profile -----------------------------------------------------------------------

DEFAULT_CAPS = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}  # fmt: skip


@pytest.fixture
def docker_profile(reference_dir: Path) -> dict[str, Any]:
    profile: dict[str, Any] = json.loads(
        (reference_dir / "docker-default-seccomp.json").read_text()
    )
    return profile


def test_docker_default_profile_decisions(docker_profile: dict[str, Any]) -> None:
    oci = docker_profile_to_oci(docker_profile, DEFAULT_CAPS, "amd64", kernel="6.1.0")
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    start = time.perf_counter()
    prog = compile_(oci)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"compiling Docker's default profile took {elapsed:.3f} s"
    assert run_bpf(prog, NR["read"]) == ALLOW
    assert run_bpf(prog, 3, arch=AUDIT_ARCH_I386) == ALLOW
    assert run_bpf(prog, NR["arch_prctl"]) == ALLOW
    assert run_bpf(prog, NR["mount"]) == errno_ret(1)
    assert run_bpf(prog, NR["unshare"]) == errno_ret(1)
    assert run_bpf(prog, NR["clone3"]) == errno_ret(38)
    assert run_bpf(prog, NR["clone"], args=(0x01200011,)) == ALLOW  # fork()-like flags
    assert run_bpf(prog, NR["clone"], args=(0x10000000 | 0x11,)) == errno_ret(1)
    assert run_bpf(prog, NR["personality"], args=(0,)) == ALLOW
    assert run_bpf(prog, NR["personality"], args=(1,)) == errno_ret(1)
    assert run_bpf(prog, NR["socket"], args=(2,)) == ALLOW
    assert run_bpf(prog, NR["socket"], args=(40,)) == errno_ret(1)  # AF_VSOCK
    assert run_bpf(prog, NR["read"], arch=AUDIT_ARCH_AARCH64) == KILL_THREAD


def test_docker_profile_follows_capabilities(docker_profile: dict[str, Any]) -> None:
    admin = docker_profile_to_oci(
        docker_profile, DEFAULT_CAPS | {"SYS_ADMIN"}, "x86_64", kernel="6.1"
    )
    prog = compile_(admin)
    assert run_bpf(prog, NR["mount"]) == ALLOW
    assert run_bpf(prog, NR["clone3"]) == ALLOW
    assert run_bpf(prog, NR["clone"], args=(0x10000011,)) == ALLOW


def test_docker_includes_and_excludes() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": [
            {"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
            {"names": ["b"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
            {"names": ["c"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_TIME"]}},
            {"names": ["d"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["e"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
            {"names": ["f"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.0"}},
            {"name": "g", "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        ],
    }

    def names(caps: set[str], arch: str, kernel: str) -> list[str]:
        oci = docker_profile_to_oci(profile, caps, arch, kernel=kernel)
        return [n for call in oci["syscalls"] for n in call["names"]]

    assert names(set(), "amd64", "6.1") == ["a", "d", "g"]
    assert names({"SYS_TIME", "CAP_SYS_ADMIN"}, "amd64", "4.4.0-generic") == ["c", "f", "g"]
    assert names(set(), "aarch64", "4.9") == ["a", "b", "d", "e", "f", "g"]
    oci = docker_profile_to_oci(profile, set(), "arm64", kernel="6.1")
    assert oci["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert oci["syscalls"][-1] == {"names": ["g"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}


def test_docker_profile_errors_name_the_field() -> None:
    with pytest.raises(InvalidArgument, match="unknown architecture 'z80'"):
        docker_profile_to_oci({"defaultAction": "SCMP_ACT_ALLOW"}, set(), "z80")
    with pytest.raises(InvalidArgument, match=r"syscalls\[0\].includes.minKernel"):
        docker_profile_to_oci(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "new"}}
                ],
            },
            set(),
            "amd64",
        )


def test_cache_key_text_is_json_dumps_sorted_and_compact() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["read", "wrïte"], "action": "SCMP_ACT_ALLOW", "args": None}],
        "flags": [],
        "n": 1.5,
    }
    assert seccomp._canonical_json(profile) == json.dumps(
        profile, sort_keys=True, separators=(",", ":")
    )
    with pytest.raises(TypeError):
        seccomp._canonical_json({"x": object()})
