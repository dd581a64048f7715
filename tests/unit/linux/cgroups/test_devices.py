"""Device rules: v1 strings, the v1-like reduction, and the v2 eBPF program run in a small
interpreter (the subset of eBPF the generator emits)."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from skiff.errors import InvalidArgument
from skiff.linux.cgroups.devices import rules
from skiff.linux.cgroups.devices_bpf import Emulator, program

BLOCK, CHAR = 1, 2
M, R, W = 1, 2, 4


def run_ebpf(code: bytes, dev_type: int, major: int, minor: int, access: int) -> int:
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    regs = [0] * 11
    regs[1] = -1  # stands for the ctx pointer
    insns = [struct.unpack_from("<BBhi", code, i) for i in range(0, len(code), 8)]
    pc = 0
    while True:
        op, regbyte, off, imm = insns[pc]
        dst, src = regbyte & 0x0F, regbyte >> 4
        pc += 1
        if op == 0x61:
            assert regs[src] == -1, "loads only from ctx"
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == 0x57:
            regs[dst] &= imm
        elif op == 0x77:
            regs[dst] >>= imm
        elif op == 0xB7:
            regs[dst] = imm
        elif op == 0xBF:
            regs[dst] = regs[src]
        elif op == 0x55:
            if regs[dst] != imm:
                pc += off
        elif op == 0x5D:
            if regs[dst] != regs[src]:
                pc += off
        elif op == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


DOCKER_LIKE: list[dict[str, Any]] = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},  # any pts
    {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "m"},
]


def test_default_deny_with_exceptions() -> None:
    code, default_allow, n = program(rules({"devices": DOCKER_LIKE}))
    assert (default_allow, n) == (False, 4)
    assert run_ebpf(code, CHAR, 1, 3, R | W) == 1
    assert run_ebpf(code, CHAR, 1, 5, R) == 1
    assert run_ebpf(code, CHAR, 1, 5, R | W) == 0  # only read is allowed
    assert run_ebpf(code, CHAR, 1, 7, R) == 0
    assert run_ebpf(code, CHAR, 136, 42, W) == 1
    assert run_ebpf(code, BLOCK, 1, 3, R) == 0  # type matters
    assert run_ebpf(code, BLOCK, 8, 0, M) == 1
    assert run_ebpf(code, BLOCK, 8, 0, R) == 0


def test_default_allow_with_a_deny() -> None:
    code, default_allow, _ = program(
        rules({"devices": [{"allow": False, "type": "b", "major": 8, "access": "rw"}]})
    )
    assert default_allow is True
    assert run_ebpf(code, BLOCK, 8, 1, R) == 0
    assert run_ebpf(code, BLOCK, 8, 1, M) == 1
    assert run_ebpf(code, CHAR, 8, 1, R) == 1


def test_later_rules_win_like_v1() -> None:
    emu = Emulator()
    for r in rules(
        {
            "devices": [
                {"allow": False},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
                {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "r"},
            ]
        }
    ):
        emu.apply(r)
    assert emu.default_allow is False
    assert emu.exceptions == {("c", 1, 3): {"r"}, ("c", 1, 9): {"r"}}
    for r in rules({"devices": [{"allow": True, "access": "rwm"}]}):
        emu.apply(r)
    assert (emu.default_allow, emu.exceptions) == (True, {})


def test_v1_strings() -> None:
    parsed = rules({"devices": DOCKER_LIKE})
    assert [r.cgroup_v1() for r in parsed] == [
        "a *:* rwm",
        "c 1:3 rwm",
        "c 1:5 r",
        "c 136:* rwm",
        "b 8:0 m",
    ]


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"type": "c"}, r"devices\[0\].allow: is required"),
        ({"allow": "yes"}, r"devices\[0\].allow: must be true or false"),
        ({"allow": True, "major": -2}, r"devices\[0\].major"),
    ],
)
def test_bad_rules_name_the_field(rule: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        rules({"devices": [rule]})
