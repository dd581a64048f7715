"""Linux capabilities: names and numbers, and applying an OCI process.capabilities object.

The five sets of OCI (bounding, effective, permitted, inheritable, ambient) map to
prctl(PR_CAPBSET_DROP), capset(2) (version 3, 64 bits) and prctl(PR_CAP_AMBIENT).
The caller sets PR_SET_KEEPCAPS before setuid/setgid and calls `apply` after them.
"""

from __future__ import annotations

import os

from skiff.errors import FailedPrecondition, InvalidArgument
from skiff.linux import cdata

TYPE_CHECKING = False  # collections.abc costs ~1 ms: every container start imports this
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

CAP_NUMBERS: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
CAP_NAMES: dict[int, str] = {number: name for name, number in CAP_NUMBERS.items()}


def last_cap() -> int:
    """The highest capability number the running kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return max(CAP_NUMBERS.values())


LAST_CAP = last_cap()
ALL_CAPS: list[str] = [name for name, number in CAP_NUMBERS.items() if number <= LAST_CAP]

SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")

_PR_CAPBSET_READ = 23
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_RAISE = 2
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _Header(cdata.Structure):
    _fields_ = [("version", cdata.c_uint32), ("pid", cdata.c_int)]


class _Data(cdata.Structure):
    _fields_ = [
        ("effective", cdata.c_uint32),
        ("permitted", cdata.c_uint32),
        ("inheritable", cdata.c_uint32),
    ]


_libc = cdata.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [
    cdata.c_int,
    cdata.c_ulong,
    cdata.c_ulong,
    cdata.c_ulong,
    cdata.c_ulong,
]


def parse_cap(name: str) -> int:
    """The number of capability `name` ("CAP_CHOWN" or "CHOWN", any case)."""
    key = name.strip().upper()
    if not key.startswith("CAP_"):
        key = "CAP_" + key
    if key not in CAP_NUMBERS:
        raise InvalidArgument(f"capability {name!r}: unknown capability")
    return CAP_NUMBERS[key]


def _mask(names: Sequence[str], where: str) -> int:
    mask = 0
    for name in names:
        try:
            number = parse_cap(name)
        except InvalidArgument as e:
            raise e.wrap(f"process.capabilities.{where}") from e
        if number <= LAST_CAP:  # the kernel does not know newer ones: ignore, like runc
            mask |= 1 << number
    return mask


def _prctl(option: int, arg2: int = 0, arg3: int = 0, what: str = "prctl") -> int:
    result = int(_libc.prctl(option, arg2, arg3, 0, 0))
    if result < 0:
        err = cdata.get_errno()
        raise FailedPrecondition(f"{what}: {os.strerror(err)}")
    return result


def _capget() -> tuple[int, int, int]:
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    if _libc.capget(cdata.byref(header), data) != 0:
        err = cdata.get_errno()
        raise FailedPrecondition(f"capget: {os.strerror(err)}")
    return (
        data[0].effective | data[1].effective << 32,
        data[0].permitted | data[1].permitted << 32,
        data[0].inheritable | data[1].inheritable << 32,
    )


def _capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _libc.capset(cdata.byref(header), data) != 0:
        err = cdata.get_errno()
        raise FailedPrecondition(
            f"capset(effective={effective:#x}, permitted={permitted:#x}, "
            f"inheritable={inheritable:#x}): {os.strerror(err)}"
        )


def apply(caps: Mapping[str, Sequence[str]] | None) -> None:
    """Make this process's capability sets those of OCI `process.capabilities`.

    `None` leaves the sets as they are. A set missing from the mapping is empty. Order: raise
    effective to permitted (so CAP_SETPCAP is usable after setuid with KEEPCAPS), drop bounding
    entries not listed, capset the three sets, then clear ambient and raise the listed ones.
    """
    if caps is None:
        return
    for key in caps:
        if key not in SETS:
            raise InvalidArgument(f"process.capabilities: unknown set {key!r}")
    masks = {s: _mask(caps.get(s) or (), s) for s in SETS}
    _effective, permitted, inheritable = _capget()
    _capset(permitted, permitted, inheritable)
    for number in range(LAST_CAP + 1):
        if not masks["bounding"] & (1 << number) and _prctl(_PR_CAPBSET_READ, number) == 1:
            _prctl(_PR_CAPBSET_DROP, number, what=f"drop {CAP_NAMES[number]} from the bounding set")
    _capset(masks["effective"], masks["permitted"], masks["inheritable"])
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, what="clear the ambient set")
    for number in range(LAST_CAP + 1):
        if masks["ambient"] & (1 << number):
            _prctl(
                _PR_CAP_AMBIENT,
                _PR_CAP_AMBIENT_RAISE,
                number,
                what=f"raise {CAP_NAMES[number]} in the ambient set",
            )


def names(mask: int) -> list[str]:
    """The capability names set in `mask`, in number order."""
    return [CAP_NAMES.get(n, f"CAP_{n}") for n in range(64) if mask & (1 << n)]


def current(pid: int | str = "self") -> dict[str, list[str]]:
    """The capability sets of process `pid` (default: this one), read from /proc/<pid>/status."""
    fields = {
        "CapInh": "inheritable",
        "CapPrm": "permitted",
        "CapEff": "effective",
        "CapBnd": "bounding",
        "CapAmb": "ambient",
    }
    result: dict[str, list[str]] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in fields:
                result[fields[key]] = names(int(value.strip(), 16))
    return result


__all__ = [
    "ALL_CAPS",
    "CAP_NAMES",
    "CAP_NUMBERS",
    "LAST_CAP",
    "apply",
    "current",
    "names",
    "parse_cap",
]
