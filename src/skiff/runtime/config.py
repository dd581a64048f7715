"""Load and validate a bundle's config.json (OCI runtime-spec v1.2) before anything is created.

`load(bundle)` returns the spec as plain dicts (the shape every step reads) after checking the
fields the runtime itself acts on; one error names the first bad field with its JSON path:
"config.json: linux.namespaces[2].type: unknown namespace type 'foo'". Fields that belong to
other components (linux.resources, linux.seccomp) are checked by them, also before the fork.
"""

from __future__ import annotations

import os

from skiff.errors import InvalidArgument, NotFound
from skiff.linux.namespaces import NAMESPACES
from skiff.linux.syscalls import RLIMITS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HOOK_KINDS = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)


def _bad(path: str, problem: str) -> InvalidArgument:
    return InvalidArgument(f"config.json: {path}: {problem}")


def _type_name(value: object) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _get(
    obj: dict[str, Any],
    key: str,
    path: str,
    kind: type | tuple[type, ...],
    *,
    required: bool = False,
) -> Any:
    if key not in obj:
        if required:
            raise _bad(f"{path}{key}", "required field is missing")
        return None
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        want = " or ".join(_type_name(k()) for k in kinds)
        raise _bad(f"{path}{key}", f"must be {want}, not {_type_name(value)}")
    return value


def _uint(obj: dict[str, Any], key: str, path: str, *, required: bool = False) -> int | None:
    value = _get(obj, key, path, int, required=required)
    if value is not None and value < 0:
        raise _bad(f"{path}{key}", f"must not be negative, got {value}")
    return value  # type: ignore[no-any-return]


def _str_list(
    obj: dict[str, Any], key: str, path: str, *, required: bool = False
) -> list[str] | None:
    value = _get(obj, key, path, list, required=required)
    if value is None:
        return None
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _bad(f"{path}{key}[{i}]", f"must be string, not {_type_name(item)}")
    return value  # type: ignore[no-any-return]


def read(bundle: str) -> dict[str, Any]:
    """Parse <bundle>/config.json; errors name the file and what is wrong with it."""
    from skiff.runtime import jsonio

    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise NotFound(f"config.json: {path}: no such file (is --bundle right?)") from None
    except OSError as err:
        raise InvalidArgument(f"config.json: open {path}: {err.strerror}") from None
    try:
        spec = jsonio.loads(raw)
    except (jsonio.JSONError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"config.json: malformed JSON: {err}") from None
    if not isinstance(spec, dict):
        raise InvalidArgument(f"config.json: top level must be an object, not {_type_name(spec)}")
    return spec


def load(bundle: str, *, need_process: bool = True) -> dict[str, Any]:
    """Read and validate <bundle>/config.json; root.path is made absolute."""
    spec = read(bundle)
    validate(spec, bundle, need_process=need_process)
    return spec


def validate(spec: dict[str, Any], bundle: str, *, need_process: bool = True) -> None:
    """Check every field the runtime acts on; raise InvalidArgument naming the first bad one."""
    version = _get(spec, "ociVersion", "", str, required=True)
    if not version.startswith("1."):
        raise _bad("ociVersion", f"unsupported version {version!r} (want 1.x)")
    root = _get(spec, "root", "", dict, required=True)
    root_path = _get(root, "path", "root.", str, required=True)
    if not root_path:
        raise _bad("root.path", "must not be empty")
    _get(root, "readonly", "root.", bool)
    rootfs = root_path if os.path.isabs(root_path) else os.path.join(bundle, root_path)
    if not os.path.isdir(rootfs):
        raise NotFound(
            f"config.json: root.path: rootfs {rootfs} does not exist or is not a directory"
        )
    process = _get(spec, "process", "", dict, required=need_process)
    if process is not None:
        validate_process(process, "process.")
    _get(spec, "hostname", "", str)
    _get(spec, "domainname", "", str)
    mounts = _get(spec, "mounts", "", list) or []
    for i, m in enumerate(mounts):
        p = f"mounts[{i}]"
        if not isinstance(m, dict):
            raise _bad(p, f"must be object, not {_type_name(m)}")
        _get(m, "destination", f"{p}.", str, required=True)
        _get(m, "type", f"{p}.", str)
        _get(m, "source", f"{p}.", str)
        _str_list(m, "options", f"{p}.")
    hooks = _get(spec, "hooks", "", dict) or {}
    for kind, entries in hooks.items():
        if kind not in HOOK_KINDS:
            raise _bad(f"hooks.{kind}", f"unknown hook kind (known: {', '.join(HOOK_KINDS)})")
        if not isinstance(entries, list):
            raise _bad(f"hooks.{kind}", f"must be array, not {_type_name(entries)}")
        for i, hook in enumerate(entries):
            p = f"hooks.{kind}[{i}]"
            if not isinstance(hook, dict):
                raise _bad(p, f"must be object, not {_type_name(hook)}")
            hpath = _get(hook, "path", f"{p}.", str, required=True)
            if not os.path.isabs(hpath):
                raise _bad(f"{p}.path", f"must be an absolute path, got {hpath!r}")
            _str_list(hook, "args", f"{p}.")
            _str_list(hook, "env", f"{p}.")
            timeout = _get(hook, "timeout", f"{p}.", int)
            if timeout is not None and timeout <= 0:
                raise _bad(f"{p}.timeout", f"must be positive, got {timeout}")
    annotations = _get(spec, "annotations", "", dict) or {}
    for key, value in annotations.items():
        if not isinstance(value, str):
            raise _bad(f"annotations.{key}", f"must be string, not {_type_name(value)}")
    linux = _get(spec, "linux", "", dict) or {}
    validate_linux(spec, linux)


def validate_process(process: dict[str, Any], p: str) -> None:
    """Check an OCI `process` object (config.json's, or `exec --process`'s)."""
    args = _str_list(process, "args", p, required=True)
    if not args:
        raise _bad(f"{p}args", "must name the program to run (empty)")
    cwd = _get(process, "cwd", p, str, required=True)
    if not os.path.isabs(cwd):
        raise _bad(f"{p}cwd", f"must be an absolute path, got {cwd!r}")
    _get(process, "terminal", p, bool)
    env = _str_list(process, "env", p) or []
    for i, item in enumerate(env):
        if "=" not in item:
            raise _bad(f"{p}env[{i}]", f"must be KEY=VALUE, got {item!r}")
    user = _get(process, "user", p, dict, required=True)
    _uint(user, "uid", f"{p}user.", required=True)
    _uint(user, "gid", f"{p}user.", required=True)
    umask = _uint(user, "umask", f"{p}user.")
    if umask is not None and umask > 0o7777:
        raise _bad(f"{p}user.umask", f"out of range: {umask}")
    groups = _get(user, "additionalGids", f"{p}user.", list) or []
    for i, g in enumerate(groups):
        if not isinstance(g, int) or isinstance(g, bool) or g < 0:
            raise _bad(f"{p}user.additionalGids[{i}]", f"must be a non-negative integer, got {g!r}")
    caps = _get(process, "capabilities", p, dict) or {}
    for kind, _names in caps.items():
        if kind not in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            raise _bad(f"{p}capabilities.{kind}", "unknown capability set")
        _str_list(caps, kind, f"{p}capabilities.")
    rlimits = _get(process, "rlimits", p, list) or []
    seen: set[str] = set()
    for i, rl in enumerate(rlimits):
        rp = f"{p}rlimits[{i}]"
        if not isinstance(rl, dict):
            raise _bad(rp, f"must be object, not {_type_name(rl)}")
        kind = _get(rl, "type", f"{rp}.", str, required=True)
        if kind not in RLIMITS:
            raise _bad(f"{rp}.type", f"unknown rlimit {kind!r}")
        if kind in seen:
            raise _bad(f"{rp}.type", f"rlimit {kind} given twice")
        seen.add(kind)
        soft = _uint(rl, "soft", f"{rp}.", required=True)
        hard = _uint(rl, "hard", f"{rp}.", required=True)
        assert soft is not None and hard is not None
        if soft > hard:
            raise _bad(rp, f"soft limit {soft} exceeds hard limit {hard}")
    _get(process, "noNewPrivileges", p, bool)
    oom = _get(process, "oomScoreAdj", p, int)
    if oom is not None and not -1000 <= oom <= 1000:
        raise _bad(f"{p}oomScoreAdj", f"must be within -1000..1000, got {oom}")
    _get(process, "apparmorProfile", p, str)
    _get(process, "selinuxLabel", p, str)
    size = _get(process, "consoleSize", p, dict)
    if size is not None:
        _uint(size, "height", f"{p}consoleSize.", required=True)
        _uint(size, "width", f"{p}consoleSize.", required=True)


def validate_linux(spec: dict[str, Any], linux: dict[str, Any]) -> None:
    namespaces = _get(linux, "namespaces", "linux.", list) or []
    seen: set[str] = set()
    for i, ns in enumerate(namespaces):
        p = f"linux.namespaces[{i}]"
        if not isinstance(ns, dict):
            raise _bad(p, f"must be object, not {_type_name(ns)}")
        kind = _get(ns, "type", f"{p}.", str, required=True)
        if kind not in NAMESPACES:
            raise _bad(f"{p}.type", f"unknown namespace type {kind!r}")
        if kind in seen:
            raise _bad(f"{p}.type", f"namespace {kind!r} listed twice")
        seen.add(kind)
        ns_path = _get(ns, "path", f"{p}.", str)
        if ns_path and not os.path.exists(ns_path):
            raise _bad(f"{p}.path", f"namespace path {ns_path} does not exist")
    for key in ("uidMappings", "gidMappings"):
        maps = _get(linux, key, "linux.", list) or []
        for i, m in enumerate(maps):
            p = f"linux.{key}[{i}]"
            if not isinstance(m, dict):
                raise _bad(p, f"must be object, not {_type_name(m)}")
            for field in ("containerID", "hostID", "size"):
                _uint(m, field, f"{p}.", required=True)
    new_user = "user" in seen and not any(
        ns.get("path") for ns in namespaces if ns.get("type") == "user"
    )
    if new_user and not linux.get("uidMappings"):
        raise _bad("linux.uidMappings", "a new user namespace needs uidMappings")
    if new_user and not linux.get("gidMappings"):
        raise _bad("linux.gidMappings", "a new user namespace needs gidMappings")
    if (linux.get("uidMappings") or linux.get("gidMappings")) and "user" not in seen:
        raise _bad("linux.uidMappings", "id mappings given without a user namespace")
    uts_private = any(ns.get("type") == "uts" and not ns.get("path") for ns in namespaces)
    if spec.get("hostname") and "uts" not in seen:
        raise _bad("hostname", "setting the hostname needs a uts namespace")
    if spec.get("domainname") and not uts_private and "uts" not in seen:
        raise _bad("domainname", "setting the domainname needs a uts namespace")
    offsets = _get(linux, "timeOffsets", "linux.", dict)
    if offsets:
        if "time" not in seen:
            raise _bad("linux.timeOffsets", "time offsets need a time namespace")
        for clock, value in offsets.items():
            if clock not in ("monotonic", "boottime"):
                raise _bad(f"linux.timeOffsets.{clock}", "unknown clock (monotonic, boottime)")
            if not isinstance(value, dict):
                raise _bad(f"linux.timeOffsets.{clock}", f"must be object, not {_type_name(value)}")
            _get(value, "secs", f"linux.timeOffsets.{clock}.", int)
            _uint(value, "nanosecs", f"linux.timeOffsets.{clock}.")
    _get(linux, "cgroupsPath", "linux.", str)
    _get(linux, "resources", "linux.", dict)
    _get(linux, "seccomp", "linux.", dict)
    _get(linux, "sysctl", "linux.", dict)
    _str_list(linux, "maskedPaths", "linux.")
    _str_list(linux, "readonlyPaths", "linux.")
    propagation = _get(linux, "rootfsPropagation", "linux.", str)
    if propagation and propagation not in (
        "shared",
        "slave",
        "private",
        "unbindable",
        "rshared",
        "rslave",
        "rprivate",
        "runbindable",
    ):
        raise _bad("linux.rootfsPropagation", f"unknown propagation {propagation!r}")


def rootfs_path(spec: dict[str, Any], bundle: str) -> str:
    """The absolute rootfs path (root.path relative to the bundle)."""
    path: str = spec["root"]["path"]
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(bundle, path))


def namespaces(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(spec.get("linux", {}).get("namespaces") or [])


def has_namespace(spec: dict[str, Any], kind: str) -> bool:
    return any(ns.get("type") == kind for ns in namespaces(spec))
