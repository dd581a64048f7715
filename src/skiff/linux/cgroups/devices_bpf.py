"""cgroup v2 device rules: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE.

v2 has no devices.allow/deny; access is decided by BPF programs attached to the cgroup. The
rules are first reduced the way the v1 controller would hold them (a default — allow or deny —
plus exceptions, see `Emulator`), then compiled to straight-line eBPF: for each exception, "if
the device type, major, minor match and the requested access is covered, return the opposite of
the default"; at the end, return the default. The same approach as runc's devicefilter.

`attach()` loads the program, attaches it with BPF_F_ALLOW_MULTI and then detaches the programs
that were attached before (from an earlier `apply`), so an update never leaves a window with no
filter.
"""

from __future__ import annotations

import os
import struct

from skiff.errors import FailedPrecondition
from skiff.linux.cgroups.devices import Rule

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
# access_type = access << 16 | type
_DEV_BLOCK, _DEV_CHAR = 1, 2
_ACC = {"m": 1, "r": 2, "w": 4}

_BPF_PROG_LOAD, _BPF_PROG_ATTACH, _BPF_PROG_DETACH = 5, 8, 9
_BPF_PROG_GET_FD_BY_ID, _BPF_PROG_QUERY = 13, 16
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6
_BPF_F_ALLOW_MULTI = 1 << 1
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "loongarch64": 280, "ppc64le": 361,
            "s390x": 351, "armv7l": 386, "i686": 357, "i386": 357}  # fmt: skip


class Emulator:
    """The v1 devices controller's state: a default behaviour and a list of exceptions.

    Writing "a" resets the state; any other rule adds an exception when it goes against the
    default and removes access from matching exceptions when it agrees with it.
    """

    def __init__(self) -> None:
        self.default_allow = True  # a new cgroup allows everything
        self.exceptions: dict[tuple[str, int | None, int | None], set[str]] = {}

    def apply(self, rule: Rule) -> None:
        if rule.type == "a" and rule.major is None and rule.minor is None:
            self.default_allow = rule.allow
            self.exceptions.clear()
            return
        key = (rule.type, rule.major, rule.minor)
        if rule.allow != self.default_allow:
            self.exceptions.setdefault(key, set()).update(rule.access)
            return
        for k in list(self.exceptions):
            if _covers(key, k):
                self.exceptions[k] -= set(rule.access)
                if not self.exceptions[k]:
                    del self.exceptions[k]


def _covers(
    outer: tuple[str, int | None, int | None], inner: tuple[str, int | None, int | None]
) -> bool:
    t, ma, mi = outer
    return (
        (t == "a" or t == inner[0])
        and (ma is None or ma == inner[1])
        and (mi is None or mi == inner[2])
    )


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


_LDX_W = 0x61  # dst = *(u32 *)(src + off)
_AND_K, _RSH_K, _MOV_K, _MOV_X = 0x57, 0x77, 0xB7, 0xBF  # ALU64
_JNE_K, _JNE_X, _EXIT = 0x55, 0x5D, 0x95


def program(rules: list[Rule]) -> tuple[bytes, bool, int]:
    """(eBPF instructions, default allow?, number of exceptions) for `rules`."""
    emu = Emulator()
    for r in rules:
        emu.apply(r)
    insns = [
        _insn(_LDX_W, dst=2, src=1, off=0),  # r2 = access_type
        _insn(_AND_K, dst=2, imm=0xFFFF),  # r2 = type
        _insn(_LDX_W, dst=3, src=1, off=0),
        _insn(_RSH_K, dst=3, imm=16),  # r3 = access
        _insn(_LDX_W, dst=4, src=1, off=4),  # r4 = major
        _insn(_LDX_W, dst=5, src=1, off=8),  # r5 = minor
    ]
    verdict = 0 if emu.default_allow else 1
    for (dev_type, major, minor), access in sorted(
        emu.exceptions.items(), key=lambda kv: (kv[0][0], kv[0][1] or -1, kv[0][2] or -1)
    ):
        block: list[tuple[int, int, int, int, bool]] = []  # (code, dst, src, imm, jumps to next)
        if dev_type != "a":
            block.append((_JNE_K, 2, 0, _DEV_BLOCK if dev_type == "b" else _DEV_CHAR, True))
        mask = sum(_ACC[c] for c in access)
        if mask != 7:
            block.append((_MOV_X, 1, 3, 0, False))  # r1 = access
            block.append((_AND_K, 1, 0, mask, False))  # r1 &= allowed
            block.append((_JNE_X, 1, 3, 0, True))  # if r1 != r3: not covered
        if major is not None:
            block.append((_JNE_K, 4, 0, major, True))
        if minor is not None:
            block.append((_JNE_K, 5, 0, minor, True))
        length = len(block) + 2
        for i, (code, dst, src, imm, jumps) in enumerate(block):
            insns.append(_insn(code, dst=dst, src=src, off=length - i - 1 if jumps else 0, imm=imm))
        insns.append(_insn(_MOV_K, dst=0, imm=verdict))
        insns.append(_insn(_EXIT))
    insns.append(_insn(_MOV_K, dst=0, imm=1 if emu.default_allow else 0))
    insns.append(_insn(_EXIT))
    return b"".join(insns), emu.default_allow, len(emu.exceptions)


# --- the bpf(2) syscall -------------------------------------------------------------------------


def _bpf(cmd: int, attr: bytearray, what: str) -> int:
    import ctypes

    nr = _SYS_BPF.get(os.uname().machine)
    if nr is None:
        raise FailedPrecondition(f"{what}: bpf(2) number unknown for {os.uname().machine}")
    libc = ctypes.CDLL(None, use_errno=True)
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    rc = int(libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), buf, ctypes.c_uint(len(attr))))
    if rc < 0:
        err = ctypes.get_errno()
        raise FailedPrecondition(f"{what}: bpf: {os.strerror(err)}")
    return rc


def _load(code: bytes, what: str) -> int:
    import ctypes

    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"Apache")
    log = ctypes.create_string_buffer(65536)
    attr = bytearray(128)
    struct.pack_into(
        "<IIQQIIQII",
        attr,
        0,
        _BPF_PROG_TYPE_CGROUP_DEVICE,
        len(code) // 8,
        ctypes.addressof(insns),
        ctypes.addressof(license_),
        1,
        len(log),
        ctypes.addressof(log),
        0,
        0,
    )
    attr[48:64] = b"skiff_devices".ljust(16, b"\0")
    struct.pack_into("<I", attr, 68, _BPF_CGROUP_DEVICE)
    try:
        return _bpf(_BPF_PROG_LOAD, attr, what)
    except FailedPrecondition as e:
        verifier = log.value.decode(errors="replace").strip()
        raise FailedPrecondition(f"{e.message}{': ' + verifier if verifier else ''}") from None


def _attached(cgroup_fd: int, what: str) -> list[int]:
    import ctypes

    ids = (ctypes.c_uint32 * 64)()
    attr = bytearray(128)
    struct.pack_into(
        "<IIIIQI", attr, 0, cgroup_fd, _BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), 64
    )
    _bpf(_BPF_PROG_QUERY, attr, what)
    count = struct.unpack_from("<I", attr, 24)[0]
    return [ids[i] for i in range(min(count, 64))]


def attach(directory: str, rules: list[Rule], field: str) -> None:
    """Replace the device program of the cgroup at `directory` by one built from `rules`."""
    what = f"{field}: attach a device filter to {directory}"
    code, _, _ = program(rules)
    try:
        cgroup_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise FailedPrecondition(f"{what}: {os.strerror(e.errno or 0)}") from None
    try:
        old = _attached(cgroup_fd, what)
        prog_fd = _load(code, what)
        try:
            attr = bytearray(64)
            struct.pack_into(
                "<IIII", attr, 0, cgroup_fd, prog_fd, _BPF_CGROUP_DEVICE, _BPF_F_ALLOW_MULTI
            )
            _bpf(_BPF_PROG_ATTACH, attr, what)
        finally:
            os.close(prog_fd)
        for prog_id in old:
            attr = bytearray(64)
            struct.pack_into("<I", attr, 0, prog_id)
            old_fd = _bpf(_BPF_PROG_GET_FD_BY_ID, attr, what)
            try:
                attr = bytearray(64)
                struct.pack_into("<III", attr, 0, cgroup_fd, old_fd, _BPF_CGROUP_DEVICE)
                _bpf(_BPF_PROG_DETACH, attr, what)
            finally:
                os.close(old_fd)
    finally:
        os.close(cgroup_fd)
