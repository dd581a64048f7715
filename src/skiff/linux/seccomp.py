"""Seccomp: compile an OCI `linux.seccomp` section to classic BPF and install it.

Vocabulary:
  profile  the OCI `linux.seccomp` mapping (defaultAction, architectures, flags, syscalls[]).
  program  the compiled filter: an array of `struct sock_filter` (8 bytes each) as `bytes`.
  flags    SECCOMP_FILTER_FLAG_* bits passed to seccomp(2) when the program is installed.

Lifecycle: the runtime calls `compile()` in the parent (cheap to repeat: results are cached by a
hash of the input), hands the bytes to the container's init process, which calls
`install(program, flags_of(profile))` as late as possible before exec, after it has set
no_new_privs (or while it still holds CAP_SYS_ADMIN).

Compilation goes through libseccomp (`libseccomp.so.2`) with ctypes, following runc's rules:
syscall names this libseccomp does not know are skipped; rules whose action equals the default
action are skipped; a rule with several conditions on the same argument becomes one rule per
condition (OR), otherwise the conditions of one rule are ANDed. SCMP_ACT_NOTIFY is refused with
NotImplementedYet. json and sha256 are imported only when compiling; ctypes at import, because `install()` runs
in the container's init after pivot_root, when the host's Python library is out of reach.
"""

from __future__ import annotations

import ctypes  # at import time: install() runs after pivot_root, when no more modules can load
import errno as _errno
import os
from _collections_abc import Mapping  # collections.abc.Mapping, minus 1 ms of importing collections

from skiff.errors import FailedPrecondition, Internal, InvalidArgument, NotImplementedYet

TYPE_CHECKING = False  # typing costs ~10 ms to import; the runtime starts often
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "ACTIONS",
    "ARCHES",
    "DEFAULT_CACHE_DIR",
    "FLAGS",
    "OPERATORS",
    "compile",
    "features",
    "flags_of",
    "install",
]

FIELD = "linux.seccomp"
DEFAULT_CACHE_DIR = "/run/skiff-runtime/seccomp-cache"

# libseccomp action values (seccomp.h); ERRNO and TRACE carry a 16-bit payload.
_ACT_KILL_PROCESS = 0x80000000
_ACT_KILL_THREAD = 0x00000000
_ACT_TRAP = 0x00030000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000
_ACT_LOG = 0x7FFC0000
_ACT_ALLOW = 0x7FFF0000

ACTIONS: tuple[str, ...] = (
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
)

# enum scmp_compare
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# OCI architecture name → libseccomp architecture name (seccomp_arch_resolve_name).
ARCHES: dict[str, str] = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_LOONGARCH64": "loongarch64",
    "SCMP_ARCH_M68K": "m68k",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel",
    "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc",
    "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_SH": "sh",
    "SCMP_ARCH_SHEB": "sheb",
    "SCMP_ARCH_PARISC": "parisc",
    "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
}

# SECCOMP_FILTER_FLAG_* (linux/seccomp.h)
FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1 << 0,
    "SECCOMP_FILTER_FLAG_LOG": 1 << 1,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 1 << 2,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 1 << 5,
}
# WAIT_KILLABLE_RECV only means something with a notify listener, which skiff does not offer.
_SUPPORTED_FLAGS = (
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
)

# seccomp(2) syscall numbers by `uname -m`.
_SYS_SECCOMP = {
    "x86_64": 317,
    "i386": 354,
    "i686": 354,
    "aarch64": 277,
    "riscv64": 277,
    "loongarch64": 277,
    "armv7l": 383,
    "armv6l": 383,
    "ppc64le": 358,
    "ppc64": 358,
    "s390x": 348,
}
_SECCOMP_SET_MODE_FILTER = 1
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SOCK_FILTER_SIZE = 8
_MAX_ARGS = 6

_SCMP_FLTATR_CTL_NNP = 3


def _int_field(value: Any, field: str, *, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{field}: must be an integer, got {value!r}")
    if value < 0 or value >= 1 << bits:
        raise InvalidArgument(f"{field}: {value} is out of range for uint{bits}")
    return value


def _action(name: Any, errno_ret: Any, field: str, *, errno_field: str) -> int:
    """OCI action name (+ errnoRet) → libseccomp action value."""
    if not isinstance(name, str):
        raise InvalidArgument(f"{field}: must be a string, got {name!r}")
    if errno_ret is not None:
        errno_ret = _int_field(errno_ret, errno_field, bits=32)
        if name not in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
            raise InvalidArgument(
                f"{errno_field}: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, not {name}"
            )
        if errno_ret > 0xFFFF:
            raise InvalidArgument(f"{errno_field}: {errno_ret} does not fit in 16 bits")
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return _ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return _ACT_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return _ACT_TRAP
    if name == "SCMP_ACT_ALLOW":
        return _ACT_ALLOW
    if name == "SCMP_ACT_LOG":
        return _ACT_LOG
    if name == "SCMP_ACT_ERRNO":
        return _ACT_ERRNO | (_errno.EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_TRACE":
        return _ACT_TRACE | (_errno.EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_NOTIFY":
        raise NotImplementedYet(
            f"{field}: SCMP_ACT_NOTIFY (seccomp user notification) is not supported"
        )
    raise InvalidArgument(f"{field}: unknown action {name!r}")


def flags_of(seccomp: Mapping[str, Any]) -> int:
    """The SECCOMP_FILTER_FLAG_* bits named by `linux.seccomp.flags`, for `install()`."""
    raw = seccomp.get("flags")
    if raw is None:
        return 0
    if not isinstance(raw, list):
        raise InvalidArgument(f"{FIELD}.flags: must be a list of strings, got {raw!r}")
    bits = 0
    for i, name in enumerate(raw):
        field = f"{FIELD}.flags[{i}]"
        if name not in FLAGS:
            raise InvalidArgument(f"{field}: unknown flag {name!r}")
        if name not in _SUPPORTED_FLAGS:
            raise NotImplementedYet(
                f"{field}: {name} needs a seccomp notify listener (not supported)"
            )
        bits |= FLAGS[name]
    return bits


# --- libseccomp through ctypes ------------------------------------------------------------------

_lib: Any = None


def _libseccomp() -> Any:
    global _lib
    if _lib is not None:
        return _lib
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as e:
        raise FailedPrecondition(
            f"seccomp: cannot load libseccomp.so.2 ({e}); install libseccomp2"
        ) from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.restype = None
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    lib.seccomp_arch_native.argtypes = []
    lib.seccomp_arch_add.restype = ctypes.c_int
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_remove.restype = ctypes.c_int
    lib.seccomp_arch_remove.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_void_p,
    ]
    lib.seccomp_attr_set.restype = ctypes.c_int
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_export_bpf.restype = ctypes.c_int
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_version.restype = ctypes.c_void_p
    lib.seccomp_version.argtypes = []
    _lib = lib
    return lib


_libc_handle: Any = None


def _libc() -> Any:
    """libc, opened once: `compile()` opens it in the parent so the forked child that calls
    `install()` need not dlopen (unsafe after fork in a threaded process)."""
    global _libc_handle
    if _libc_handle is None:
        _libc_handle = ctypes.CDLL(None, use_errno=True)
    return _libc_handle


def _libseccomp_version() -> str:
    lib = _libseccomp()
    ver = ctypes.cast(lib.seccomp_version(), ctypes.POINTER(ctypes.c_uint * 3)).contents
    return f"{ver[0]}.{ver[1]}.{ver[2]}"


def _arg_struct() -> type[ctypes.Structure]:
    class ScmpArgCmp(ctypes.Structure):
        _fields_ = [
            ("arg", ctypes.c_uint),
            ("op", ctypes.c_int),
            ("datum_a", ctypes.c_uint64),
            ("datum_b", ctypes.c_uint64),
        ]

    return ScmpArgCmp


def _conditions(args: Any, field: str) -> list[tuple[int, int, int, int]]:
    if args is None:
        return []
    if not isinstance(args, list):
        raise InvalidArgument(f"{field}: must be a list, got {args!r}")
    out = []
    for j, arg in enumerate(args):
        afield = f"{field}[{j}]"
        if not isinstance(arg, Mapping):
            raise InvalidArgument(f"{afield}: must be an object, got {arg!r}")
        for key in ("index", "value", "op"):
            if key not in arg:
                raise InvalidArgument(f"{afield}.{key}: is required")
        index = _int_field(arg["index"], f"{afield}.index", bits=32)
        if index >= _MAX_ARGS:
            raise InvalidArgument(f"{afield}.index: {index} is not a syscall argument (0-5)")
        value = _int_field(arg["value"], f"{afield}.value", bits=64)
        value_two = _int_field(arg.get("valueTwo", 0), f"{afield}.valueTwo", bits=64)
        op = OPERATORS.get(arg["op"]) if isinstance(arg["op"], str) else None
        if op is None:
            raise InvalidArgument(f"{afield}.op: unknown operator {arg['op']!r}")
        out.append((index, op, value, value_two))
    return out


def _check_result(rc: int, what: str) -> None:
    if rc < 0:
        raise InvalidArgument(f"{what}: libseccomp: {os.strerror(-rc)}")


def _compile_uncached(seccomp: Mapping[str, Any]) -> bytes:
    if not isinstance(seccomp, Mapping):
        raise InvalidArgument(f"{FIELD}: must be an object, got {type(seccomp).__name__}")
    if "defaultAction" not in seccomp:
        raise InvalidArgument(f"{FIELD}.defaultAction: is required")
    default = _action(
        seccomp["defaultAction"],
        seccomp.get("defaultErrnoRet"),
        f"{FIELD}.defaultAction",
        errno_field=f"{FIELD}.defaultErrnoRet",
    )
    flags_of(seccomp)  # validated here too, so a bad section fails at compile time

    arches = seccomp.get("architectures") or []
    if not isinstance(arches, list):
        raise InvalidArgument(f"{FIELD}.architectures: must be a list, got {arches!r}")
    syscalls = seccomp.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise InvalidArgument(f"{FIELD}.syscalls: must be a list, got {syscalls!r}")

    # Validate everything before touching libseccomp, so errors name the field, not the library.
    rules: list[tuple[int, int, str, list[tuple[int, int, int, int]]]] = []
    for i, call in enumerate(syscalls):
        cfield = f"{FIELD}.syscalls[{i}]"
        if not isinstance(call, Mapping):
            raise InvalidArgument(f"{cfield}: must be an object, got {call!r}")
        names = call.get("names")
        if not isinstance(names, list) or not names:
            raise InvalidArgument(f"{cfield}.names: must be a non-empty list of syscall names")
        if "action" not in call:
            raise InvalidArgument(f"{cfield}.action: is required")
        act = _action(
            call["action"],
            call.get("errnoRet"),
            f"{cfield}.action",
            errno_field=f"{cfield}.errnoRet",
        )
        conds = _conditions(call.get("args"), f"{cfield}.args")
        for k, name in enumerate(names):
            if not isinstance(name, str) or not name:
                raise InvalidArgument(f"{cfield}.names[{k}]: must be a syscall name, got {name!r}")
            rules.append((i, act, name, conds))

    arch_tokens: list[int] = []
    lib = _libseccomp()
    for i, arch in enumerate(arches):
        if arch not in ARCHES:
            raise InvalidArgument(f"{FIELD}.architectures[{i}]: unknown architecture {arch!r}")
        token = lib.seccomp_arch_resolve_name(ARCHES[arch].encode())
        if token == 0:
            raise FailedPrecondition(
                f"{FIELD}.architectures[{i}]: {arch} is not supported by libseccomp "
                f"{_libseccomp_version()}"
            )
        arch_tokens.append(token)

    ctx = lib.seccomp_init(default)
    if not ctx:
        raise Internal(f"{FIELD}: seccomp_init failed")
    try:
        # Exporting never loads, but keep the filter from asking for no_new_privs on its own.
        lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_NNP, 0)
        native = lib.seccomp_arch_native()
        for i, token in enumerate(arch_tokens):
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and rc != -_errno.EEXIST:
                _check_result(rc, f"{FIELD}.architectures[{i}]")
        if arch_tokens and native not in arch_tokens:
            # The profile names its architectures; the native one is only there because
            # seccomp_init added it.
            _check_result(lib.seccomp_arch_remove(ctx, native), f"{FIELD}.architectures")

        arg_type = _arg_struct()
        resolved: dict[str, int] = {}
        for i, act, name, conds in rules:
            if act == default:
                continue
            nr = resolved.get(name)
            if nr is None:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                resolved[name] = nr
            if nr == -1:  # __NR_SCMP_ERROR: unknown to this libseccomp, skipped like runc does
                continue
            what = f"{FIELD}.syscalls[{i}] ({name})"
            if not conds:
                _check_result(lib.seccomp_rule_add_array(ctx, act, nr, 0, None), what)
                continue
            indexes = [c[0] for c in conds]
            groups = [[c] for c in conds] if len(set(indexes)) != len(indexes) else [conds]
            for group in groups:
                arr = (arg_type * len(group))(*(arg_type(*c) for c in group))
                _check_result(
                    lib.seccomp_rule_add_array(ctx, act, nr, len(group), ctypes.byref(arr)), what
                )

        fd = os.memfd_create("skiff-seccomp", os.MFD_CLOEXEC)
        try:
            rc = lib.seccomp_export_bpf(ctx, fd)
            if rc < 0:
                raise Internal(f"{FIELD}: seccomp_export_bpf: {os.strerror(-rc)}")
            size = os.lseek(fd, 0, os.SEEK_END)
            program = os.pread(fd, size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    if not program or len(program) % _SOCK_FILTER_SIZE:
        raise Internal(f"{FIELD}: libseccomp exported a program of {len(program)} bytes")
    return program


def _canonical_json(obj: Any) -> str:
    """json.dumps(obj, sort_keys=True, separators=(",", ":")) on the C encoder alone: `import
    json` costs ~3 ms (it compiles regular expressions) on every container start."""
    import _json

    def not_serializable(o: object) -> object:
        raise TypeError(f"object of type {type(o).__name__} is not JSON serializable")

    encode = _json.make_encoder(
        {}, not_serializable, _json.encode_basestring_ascii, None, ":", ",", True, False, True
    )
    return "".join(encode(obj, 0))


def _cache_key(seccomp: Mapping[str, Any]) -> str:
    try:  # the builtin module skips hashlib's OpenSSL load (~2 ms per runtime start)
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256

    try:
        text = _canonical_json(seccomp)
    except (TypeError, ValueError):
        return ""
    h = sha256()
    h.update(f"skiff-seccomp-1|{_libseccomp_version()}|{os.uname().machine}|".encode())
    h.update(text.encode())
    digest: str = h.hexdigest()
    return digest


def compile(seccomp: Mapping[str, Any], *, cache_dir: str | None = DEFAULT_CACHE_DIR) -> bytes:
    """Compile an OCI `linux.seccomp` section to a classic BPF program (sock_filter array).

    Results are cached under `cache_dir` by a hash of the input (and of the libseccomp version);
    `cache_dir=None` disables the cache. Invalid sections raise InvalidArgument naming the field.
    """
    _libc()  # loaded here, in the parent, for install() in the child
    key = _cache_key(seccomp) if cache_dir else ""
    if key and cache_dir:
        path = os.path.join(cache_dir, key + ".bpf")
        try:
            with open(path, "rb") as f:
                cached = f.read()
            if cached and len(cached) % _SOCK_FILTER_SIZE == 0:
                return cached
        except OSError:
            pass
    program = _compile_uncached(seccomp)
    if key and cache_dir:
        _cache_store(cache_dir, key, program)
    return program


def _cache_store(cache_dir: str, key: str, program: bytes) -> None:
    """Best effort: temp file + rename, so a reader sees the whole program or none."""
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        tmp = os.path.join(cache_dir, f".{key}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, program)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(cache_dir, key + ".bpf"))
    except OSError:
        pass


# --- installing ---------------------------------------------------------------------------------


def install(program: bytes, flags: int = 0) -> None:
    """Load `program` as a seccomp filter of the calling thread (and, with TSYNC, its siblings).

    Needs no_new_privs set or CAP_SYS_ADMIN. Meant for a freshly forked, single-threaded child.
    """
    if not program or len(program) % _SOCK_FILTER_SIZE:
        raise InvalidArgument(
            f"seccomp: install: program of {len(program)} bytes is not a sock_filter array"
        )
    count = len(program) // _SOCK_FILTER_SIZE
    if count > 0xFFFF:
        raise InvalidArgument(f"seccomp: install: program has {count} instructions (max 65535)")

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(count, ctypes.cast(buf, ctypes.c_void_p))
    libc = _libc()
    nr = _SYS_SECCOMP.get(os.uname().machine)
    if nr is not None:
        rc = libc.syscall(
            ctypes.c_long(nr),
            ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
            ctypes.c_uint(flags),
            ctypes.byref(prog),
        )
        if rc >= 0:
            return
        err = ctypes.get_errno()
    else:
        err = _errno.ENOSYS
    if err == _errno.ENOSYS and flags == 0:
        rc = libc.prctl(
            ctypes.c_int(_PR_SET_SECCOMP),
            ctypes.c_ulong(_SECCOMP_MODE_FILTER),
            ctypes.byref(prog),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        )
        if rc >= 0:
            return
        err = ctypes.get_errno()
    if err == _errno.EACCES:
        raise FailedPrecondition(
            "seccomp: install: the caller needs no_new_privs or CAP_SYS_ADMIN (EACCES)"
        )
    if err == _errno.EINVAL:
        raise InvalidArgument(
            f"seccomp: install: kernel rejected the filter or flags {flags:#x}: {os.strerror(err)}"
        )
    raise FailedPrecondition(f"seccomp: install: seccomp(SET_MODE_FILTER): {os.strerror(err)}")


# --- features -----------------------------------------------------------------------------------


def _kernel_has_seccomp() -> bool:
    try:
        with open("/proc/self/status") as f:
            return any(line.startswith("Seccomp:") for line in f)
    except OSError:
        return False


def features() -> dict[str, Any]:
    """The `linux.seccomp` object of `runtime features` (features-linux.json)."""
    try:
        lib = _libseccomp()
    except FailedPrecondition:
        return {"enabled": False}
    archs = [oci for oci, name in ARCHES.items() if lib.seccomp_arch_resolve_name(name.encode())]
    actions = [a for a in ACTIONS if a != "SCMP_ACT_NOTIFY"]
    return {
        "enabled": _kernel_has_seccomp(),
        "actions": actions,
        "operators": list(OPERATORS),
        "archs": archs,
        "knownFlags": list(FLAGS),
        "supportedFlags": list(_SUPPORTED_FLAGS),
    }
