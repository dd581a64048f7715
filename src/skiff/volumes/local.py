"""The `local` volume driver: named and anonymous volumes under the data root.

A volume is a directory `<root>/<name>/_data` plus a JSON record. Driver options follow
Docker's local driver: `type`, `device` and `o` make the volume a mount of its own
(`type=tmpfs o=size=64m`, or `type=none o=bind device=/srv/x`), mounted while at least one
container uses it and unmounted after the last. Records and reference counts are written
temp -> fsync -> rename, so a restarted daemon knows who uses what.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skiff.errors import AlreadyExists, Conflict, InvalidArgument, NotFound

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_KNOWN_OPTS = {"type", "device", "o"}


@dataclass
class Volume:
    name: str
    created: str
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    users: list[str] = field(default_factory=list)  # container ids
    populated: bool = False  # copy-up done (or content written): never copy again
    mounted: bool = False

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels


class LocalVolumes:
    def __init__(self, root: Path, mount: Callable[..., None] | None = None) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._mount = mount or _mount
        self._vols: dict[str, Volume] = {}
        for rec in self.root.glob("*/volume.json"):
            v = Volume(**json.loads(rec.read_text()))
            self._vols[v.name] = v

    # -- records -------------------------------------------------------------------------
    def _save(self, v: Volume) -> None:
        path = self.root / v.name / "volume.json"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(asdict(v), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def mountpoint(self, name: str) -> Path:
        return self.root / name / "_data"

    def get(self, name: str) -> Volume:
        with self._lock:
            try:
                return self._vols[name]
            except KeyError:
                raise NotFound(f"get {name}: no such volume") from None

    def volumes(self) -> list[Volume]:
        with self._lock:
            return sorted(self._vols.values(), key=lambda v: v.created)

    # -- lifecycle -----------------------------------------------------------------------
    def create(
        self,
        name: str | None = None,
        *,
        driver: str = "local",
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
        anonymous: bool = False,
    ) -> Volume:
        if driver not in ("local", ""):
            raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        opts = dict(options or {})
        unknown = set(opts) - _KNOWN_OPTS
        if unknown:
            raise InvalidArgument(f"invalid option key: {sorted(unknown)[0]!r}")
        if opts and "type" not in opts and "device" in opts:
            raise InvalidArgument('missing required option: "type"')
        if opts.get("type") == "none" and "bind" not in opts.get("o", "").split(","):
            raise InvalidArgument('type "none" needs o=bind')
        if opts.get("type") == "none" and not os.path.isdir(opts.get("device", "")):
            raise InvalidArgument(
                f"invalid mount config: device {opts.get('device', '')!r} is not a directory"
            )
        labels = dict(labels or {})
        if name is None or name == "":
            name = secrets.token_hex(32)
            anonymous = True
        if anonymous:
            labels.setdefault(ANONYMOUS_LABEL, "")
        if not NAME_RE.match(name):
            raise InvalidArgument(
                f'create {name}: "{name}" includes invalid characters for a local volume name, '
                'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                "directory, use absolute path"
            )
        with self._lock:
            existing = self._vols.get(name)
            if existing is not None:
                if opts and opts != existing.options:
                    raise AlreadyExists(f"volume {name} exists already with other options")
                return existing  # Docker: creating an existing volume returns it
            v = Volume(name=name, created=_now(), labels=labels, options=opts)
            self.mountpoint(name).mkdir(parents=True, exist_ok=False)
            self._vols[name] = v
            self._save(v)
            return v

    def remove(self, name: str, *, force: bool = False) -> None:
        with self._lock:
            v = self._vols.get(name)
            if v is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            if v.users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(v.users)}]")
            if v.mounted:
                _umount(self.mountpoint(name))
            shutil.rmtree(self.root / name)
            del self._vols[name]

    def prune(
        self, *, all_volumes: bool = False, keep: Callable[[Volume], bool] = lambda v: False
    ) -> tuple[list[str], int]:
        """Remove unused volumes (by default only anonymous ones, like Docker 23+)."""
        deleted, space = [], 0
        with self._lock:
            for v in list(self._vols.values()):
                if v.users or keep(v) or (not all_volumes and not v.anonymous):
                    continue
                space += _du(self.mountpoint(v.name))
                self.remove(v.name)
                deleted.append(v.name)
        return deleted, space

    # -- use by containers ---------------------------------------------------------------
    def acquire(self, name: str, container_id: str) -> Path:
        """Mark the volume used by the container (mounting it if it has mount options);
        returns the host path to bind into the container."""
        with self._lock:
            v = self.get(name)
            if container_id not in v.users:
                v.users.append(container_id)
            if v.options.get("type") and not v.mounted:
                self._mount(v.options, self.mountpoint(name))
                v.mounted = True
            self._save(v)
            return self.mountpoint(name)

    def release(self, name: str, container_id: str) -> None:
        with self._lock:
            v = self._vols.get(name)
            if v is None:
                return
            if container_id in v.users:
                v.users.remove(container_id)
            if not v.users and v.mounted:
                _umount(self.mountpoint(name))
                v.mounted = False
            self._save(v)

    def reconcile(self, live: set[str]) -> list[str]:
        """Drop references held by containers that no longer exist."""
        dropped = []
        with self._lock:
            for v in self._vols.values():
                gone = [c for c in v.users if c not in live]
                for c in gone:
                    self.release(v.name, c)
                    dropped.append(f"{v.name}:{c}")
        return dropped

    def copy_up(self, name: str, source: Path) -> bool:
        """Docker's copy-up: fill an empty, never-populated volume with the image's content
        at the mount point (`source`), keeping modes, owners, links and xattrs."""
        with self._lock:
            v = self.get(name)
            dest = self.mountpoint(name)
            if v.populated:
                return False
            v.populated = True
            self._save(v)
            if any(dest.iterdir()) or not source.is_dir():
                return False
            st = source.stat()
            os.chown(dest, st.st_uid, st.st_gid)
            os.chmod(dest, st.st_mode & 0o7777)
            for entry in source.iterdir():
                target = dest / entry.name
                if entry.is_dir() and not entry.is_symlink():
                    shutil.copytree(entry, target, symlinks=True, copy_function=_copy_keep_owner)
                    _chown_tree(entry, target)
                else:
                    _copy_keep_owner(str(entry), str(target))
            return True

    def inspect(self, v: Volume) -> dict[str, Any]:
        return {
            "CreatedAt": v.created,
            "Driver": "local",
            "Labels": v.labels or None,
            "Mountpoint": str(self.mountpoint(v.name)),
            "Name": v.name,
            "Options": v.options or None,
            "Scope": "local",
        }

    def usage(self, v: Volume) -> dict[str, int]:
        return {"Size": _du(self.mountpoint(v.name)), "RefCount": len(v.users)}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _du(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total


def _copy_keep_owner(src: str, dst: str) -> None:
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
    else:
        shutil.copy2(src, dst)
    st = os.lstat(src)
    os.lchown(dst, st.st_uid, st.st_gid)


def _chown_tree(src: Path, dst: Path) -> None:
    for dirpath, dirnames, _ in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        st = os.lstat(dirpath)
        os.lchown(os.path.join(dst, rel), st.st_uid, st.st_gid)
        for d in dirnames:
            s = os.lstat(os.path.join(dirpath, d))
            os.lchown(os.path.join(dst, rel, d), s.st_uid, s.st_gid)


def _mount(options: dict[str, str], target: Path) -> None:
    import subprocess

    fstype = options.get("type", "")
    device = options.get("device", fstype)
    args = ["mount", "-t", fstype] if fstype != "none" else ["mount"]
    if options.get("o"):
        args += ["-o", options["o"]]
    proc = subprocess.run([*args, device, str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise InvalidArgument(f"error while mounting volume '{target}': {proc.stderr.strip()}")


def _umount(target: Path) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(target)], capture_output=True)
