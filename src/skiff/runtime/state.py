"""Container state on disk: <root>/<id>/state.json, and the status derived from the kernel.

Vocabulary: the *state dir* is <root>/<id>; it holds state.json and, while the container is
`created`, the exec fifo its init blocks on. state.json is written temp → rename, so a crash of
the runtime leaves the old or the new file. No fsync, as runc: the root lives under /run, and
after a machine crash there is no container left for a state file to describe. Status is never stored: it is derived each time from
the init process (alive? zombie?), the fifo (still there = created) and the freezer.
"""

from __future__ import annotations

import os
import time

from skiff.errors import AlreadyExists, InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/run/skiff-runtime"
STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
OCI_VERSION = "1.2.0"

CREATING = "creating"
CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
STOPPED = "stopped"


def can_start(status: str) -> bool:
    return status == CREATED


def can_kill(status: str) -> bool:
    return status in (CREATED, RUNNING, PAUSED)


def can_delete(status: str) -> bool:
    return status in (STOPPED, CREATED)


def can_exec(status: str) -> bool:
    return status in (CREATED, RUNNING)


def check_id(container_id: str) -> None:
    """Container ids are path components: reject anything that could escape --root."""
    if (
        not container_id
        or container_id in (".", "..")
        or "/" in container_id
        or "\0" in container_id
        or len(container_id) > 1024
    ):
        raise InvalidArgument(f"invalid container id {container_id!r}")


def rfc3339_now() -> str:
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{stamp}.{frac:09d}Z"


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks), None when gone or a zombie.

    Together with the pid it names one process for its whole life: a reused pid has a
    different start time.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    rest = raw[raw.rfind(b")") + 2 :].split()
    if rest[0] in (b"Z", b"X"):
        return None
    return int(rest[19])


class ContainerState:
    """What the runtime remembers about one container (state.json)."""

    __slots__ = (
        "annotations",
        "bundle",
        "cgroup",
        "created",
        "id",
        "owner",
        "pid",
        "root",
        "rootfs",
        "spec",
        "start_time",
        "status_hint",
    )

    def __init__(
        self,
        root: str,
        container_id: str,
        *,
        bundle: str,
        rootfs: str,
        spec: dict[str, Any],
        pid: int = 0,
        start_time: int = 0,
        created: str = "",
        owner: str = "",
        annotations: dict[str, str] | None = None,
        cgroup: dict[str, Any] | None = None,
        status_hint: str = CREATING,
    ) -> None:
        self.root = root
        self.id = container_id
        self.pid = pid
        self.start_time = start_time
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = created or rfc3339_now()
        self.owner = owner
        self.annotations = dict(annotations or {})
        self.spec = spec
        self.cgroup = cgroup
        self.status_hint = status_hint

    @property
    def dir(self) -> str:
        return os.path.join(self.root, self.id)

    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, EXEC_FIFO)

    # -- status ---------------------------------------------------------------------------
    def alive(self) -> bool:
        """Whether the init process is the same live (non-zombie) process we started."""
        if self.pid <= 0:
            return False
        now = process_start_time(self.pid)
        return now is not None and now == self.start_time

    def status(self) -> str:
        if self.status_hint == CREATING and self.pid <= 0:
            return CREATING
        if not self.alive():
            return STOPPED
        if os.path.exists(self.fifo):
            return CREATED
        if self.cgroup:
            try:
                if self.cgroup_manager().is_frozen():
                    return PAUSED
            except Exception:
                pass
        return RUNNING

    def cgroup_manager(self) -> Any:
        from skiff.linux import cgroups

        return cgroups.load_manager(self.cgroup or {})

    def oci_state(self, status: str | None = None) -> dict[str, Any]:
        """The OCI state object (what `state` prints and hooks read on stdin), runc's shape."""
        status = status or self.status()
        out: dict[str, Any] = {
            "ociVersion": self.spec.get("ociVersion", OCI_VERSION),
            "id": self.id,
            "pid": self.pid if status != STOPPED else 0,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        }
        if self.annotations:
            out["annotations"] = self.annotations
        return out

    # -- persistence ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pid": self.pid,
            "start_time": self.start_time,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations,
            "spec": self.spec,
            "cgroup": self.cgroup,
            "status_hint": self.status_hint,
        }

    def save(self) -> None:
        from skiff.runtime import jsonio

        # 0600: the spec inside holds the process environment, which may carry secrets.
        write_atomic(
            os.path.join(self.dir, STATE_FILE), jsonio.dumps(self.to_json()).encode(), 0o600
        )

    @classmethod
    def load(cls, root: str, container_id: str) -> ContainerState:
        from skiff.runtime import jsonio

        check_id(container_id)
        path = os.path.join(root, container_id, STATE_FILE)
        try:
            with open(path, "rb") as f:
                raw = jsonio.loads(f.read())
        except FileNotFoundError:
            raise NotFound(f'container "{container_id}" does not exist') from None
        except (OSError, ValueError) as err:
            raise NotFound(f'container "{container_id}": unreadable state {path}: {err}') from None
        return cls(
            root,
            raw["id"],
            bundle=raw["bundle"],
            rootfs=raw["rootfs"],
            spec=raw.get("spec") or {},
            pid=raw.get("pid", 0),
            start_time=raw.get("start_time", 0),
            created=raw.get("created", ""),
            owner=raw.get("owner", ""),
            annotations=raw.get("annotations"),
            cgroup=raw.get("cgroup"),
            status_hint=raw.get("status_hint", CREATED),
        )


def make_state_dir(root: str, container_id: str) -> str:
    """Create <root>/<id> exclusively (the id is taken from here on)."""
    check_id(container_id)
    os.makedirs(root, mode=0o711, exist_ok=True)
    path = os.path.join(root, container_id)
    try:
        os.mkdir(path, 0o711)
    except FileExistsError:
        raise AlreadyExists(f"container with id exists: {container_id}") from None
    return path


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` via a temp file and a rename (readers see all of it or none)."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.rename(tmp, path)


def remove_state_dir(path: str) -> None:
    """Remove a state dir (plain files only; shutil costs 5 ms of imports)."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(path, name))
        except IsADirectoryError:
            remove_state_dir(os.path.join(path, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.exists(os.path.join(root, n, STATE_FILE)))
