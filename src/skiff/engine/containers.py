"""Container use cases with no HTTP: create, start, stop, wait, remove, exec, attach, adopt.

Each running container (and each exec) is supervised by its own skiff-shim; this module keeps
one "monitor" connection per shim and a thread blocked on it, so an exit is seen at once. On
start it reconciles every container on disk: shims that still run are adopted, exits that
happened while skiffd was away are finished (runtime delete, unmount, restart policy).

With skiff-runtime, a start spawns the shim (and so `skiff-runtime create`) first and lets
its create wait on a gate pipe while skiffd wires the network and writes config.json; the
runtime's start/kill/pause/resume/delete then run in-process through its library (see
`run_in_process`). Other runtimes (runc) get the plain command line for every verb.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal as _signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from skiff.engine import oci, shim_client
from skiff.engine.events import EventBus
from skiff.engine.plumbing import Plumbing
from skiff.engine.registry import RegistryConfig
from skiff.engine.security import SecurityDefaults, idmap_for, seccomp_for
from skiff.engine.state import (
    ZERO_TIME,
    Container,
    ExecRecord,
    Status,
    fresh_state,
    now_rfc3339,
    write_json_atomic,
)
from skiff.errors import (
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    NotImplementedYet,
    SkiffError,
)
from skiff.runtime.warmup import AttachPrimer
from skiff.types.reference import is_image_id, parse_reference

log = logging.getLogger("skiffd.containers")

VALID_NAME = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
RESTART_MAX_DELAY = 60.0


class Runtimes:
    """The OCI runtimes skiffd may use, by name (like dockerd's --add-runtime)."""

    def __init__(self, runtimes: dict[str, str], default: str) -> None:
        self.paths = dict(runtimes)
        self.default = default
        if default not in self.paths:
            raise InvalidArgument(
                f"default runtime {default!r} is not configured (known: {', '.join(sorted(self.paths))})"
            )

    def path(self, name: str) -> str:
        try:
            return self.paths[name or self.default]
        except KeyError:
            raise InvalidArgument(f"unknown or invalid runtime name: {name}") from None


class AttachSession:
    """A client's attachment to a container's stdio through its shim."""

    def __init__(self, want: int, stdin: bool) -> None:
        self.want = want
        self.stdin = stdin
        self.sock: socket.socket | None = None
        self.ready = threading.Event()
        self.error: str | None = None

    def connect(self, shim_dir: Path) -> None:
        try:
            self.sock = shim_client.connect(shim_dir, self.want)
        except SkiffError as err:
            self.error = err.message
        self.ready.set()

    def cancel(self, reason: str) -> None:
        self.error = reason
        self.ready.set()


class Engine:
    def __init__(
        self,
        *,
        data_root: Path,
        exec_root: Path,
        runtimes: Runtimes,
        images: Any,
        events: EventBus,
    ) -> None:
        self.data_root = data_root
        self.exec_root = exec_root
        self.runtimes = runtimes
        self.images = images
        self.events = events
        self.containers: dict[str, Container] = {}
        self.names: dict[str, str] = {}
        self.execs: dict[str, ExecRecord] = {}
        self.lock = threading.RLock()
        (data_root / "containers").mkdir(parents=True, exist_ok=True)
        (exec_root / "containers").mkdir(parents=True, exist_ok=True)
        self.runtime_root = str(exec_root / "runtime")
        # networks and volumes (issue 6); the daemon wires them in, tests may leave them out
        self.plumbing: Plumbing | None = None
        self.registry = RegistryConfig()
        # seccomp-profile, no-new-privileges, userns-remap: the daemon sets them from its config
        self.security = SecurityDefaults()
        # keeps the runtime's cgroup attach fast while containers start (see runtime/warmup.py)
        self.primer = AttachPrimer()
        # `docker run` starts right after it creates: the runtime's start-up begins at create
        # (see `_prespawn`); one not started within this many seconds is dropped.
        self.prespawn_seconds = float(os.environ.get("SKIFFD_PRESPAWN_SECONDS", "30"))
        self._prespawns = 0  # outstanding ones (each a waiting Python process, ~12 MB)
        self._prespawn_lock = threading.Lock()

    # ---- paths -------------------------------------------------------------------------
    def container_dir(self, cid: str) -> Path:
        return self.data_root / "containers" / cid

    def run_dir(self, cid: str) -> Path:
        return self.exec_root / "containers" / cid

    def shim_dir(self, cid: str) -> Path:
        # short: a unix socket path must fit in 108 bytes
        return self.exec_root / "shims" / cid[:32]

    def rootfs_dir(self, cid: str) -> Path:
        return self.run_dir(cid) / "rootfs"

    @staticmethod
    def log_rotation(host_config: dict[str, Any]) -> tuple[int, int]:
        """json-file's max-size and max-file options → (bytes, files); (0, 1) = no rotation."""
        opts = dict((host_config.get("LogConfig") or {}).get("Config") or {})
        for opt in opts:
            if opt not in ("max-size", "max-file", "tag"):  # json-file ignores tag
                raise NotImplementedYet(
                    f"log option {opt!r}: not available in skiffd's json-file driver (max-size, max-file are)"
                )
        size = oci.parse_memory_size(opts["max-size"]) if opts.get("max-size") else 0
        if size < 0:
            raise InvalidArgument(f"invalid max-size: {opts['max-size']!r}")
        try:
            files = int(opts.get("max-file") or 1)
        except ValueError:
            raise InvalidArgument(f"invalid max-file: {opts['max-file']!r}") from None
        if files < 1:
            raise InvalidArgument("max-file cannot be less than 1")
        if files > 1 and not size:
            raise InvalidArgument("max-file can only be used together with max-size")
        return size, files

    def log_path(self, c: Container) -> str:
        return str(self.container_dir(c.id) / f"{c.id}-json.log")

    def save(self, c: Container, *, durable: bool = True) -> None:
        """Write config.v2.json (temp → rename; fsync'd unless `durable=False`).

        Status changes on the run path (started, exited, removing) skip the fsync (~1-5 ms
        each): a killed skiffd loses nothing that reached the page cache, and after a machine
        crash no container runs anymore, so reconciliation turns a lost "running" or
        "removing" into exited/removed anyway (only the exit code of a container that
        exited in the last seconds before the crash can be lost). What must outlive a
        reboot (create, rename, update, restart policy) stays durable."""
        write_json_atomic(self.container_dir(c.id) / "config.v2.json", c.to_disk(), durable=durable)

    # ---- lookup ------------------------------------------------------------------------
    def get(self, ref: str) -> Container:
        """By full id, name (with or without "/"), or unique id prefix: docker's rules."""
        with self.lock:
            if ref in self.containers:
                return self.containers[ref]
            name = ref.lstrip("/")
            if name in self.names:
                return self.containers[self.names[name]]
            if ref:
                matches = [c for cid, c in self.containers.items() if cid.startswith(ref)]
                if len(matches) == 1:
                    return matches[0]
                if len(matches) > 1:
                    raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def all(self) -> list[Container]:
        with self.lock:
            return list(self.containers.values())

    def event(self, c: Container, action: str, **extra: str) -> None:
        attrs = {"image": c.config.get("Image", ""), "name": c.name}
        attrs.update({k: v for k, v in (c.config.get("Labels") or {}).items()})
        attrs.update(extra)
        self.events.publish("container", action, c.id, attrs)

    # ---- create ------------------------------------------------------------------------
    def create(self, name: str | None, body: dict[str, Any]) -> tuple[Container, list[str]]:
        self.primer.kick()  # a start usually follows at once
        if self.images is None:
            raise FailedPrecondition("no image store configured")
        image_ref = body.get("Image") or ""
        if not image_ref:
            raise InvalidArgument("config: Image is required")
        _check_image_ref(image_ref)
        if not isinstance(image_ref, str):
            raise InvalidArgument("config: Image must be a string")
        if not is_image_id(image_ref):
            parse_reference(image_ref)  # Docker: 400 `invalid reference format`, not 404
        record = self.images.resolve(image_ref)
        image_info = self.images.inspect(record.id)
        host_config = dict(body.get("HostConfig") or {})
        host_config.setdefault("NetworkMode", "default")
        if not host_config.get("NetworkMode"):
            host_config["NetworkMode"] = "default"
        host_config.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
        if not (host_config.get("LogConfig") or {}).get("Type"):
            # the CLI sends Type "" with the --log-opt options: the default driver takes them
            host_config["LogConfig"] = {
                "Type": "json-file",
                "Config": (host_config.get("LogConfig") or {}).get("Config") or {},
            }
        if host_config["LogConfig"]["Type"] not in ("json-file", "none"):
            raise NotImplementedYet(
                f"logging driver {host_config['LogConfig']['Type']!r}: skiffd supports json-file and none"
            )
        self.log_rotation(host_config)  # validates the options
        rp = host_config.get("RestartPolicy") or {}
        host_config["RestartPolicy"] = {
            "Name": rp.get("Name") or "no",
            "MaximumRetryCount": int(rp.get("MaximumRetryCount") or 0),
        }
        if host_config["RestartPolicy"]["Name"] not in (
            "no",
            "always",
            "on-failure",
            "unless-stopped",
        ):
            raise InvalidArgument(
                f"invalid restart policy '{host_config['RestartPolicy']['Name']}'"
            )
        if host_config.get("AutoRemove") and host_config["RestartPolicy"]["Name"] != "no":
            raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
        mode = host_config["NetworkMode"]
        if self.plumbing is not None and self.plumbing.networking is not None:
            self.plumbing.validate(host_config)
        elif mode not in ("default", "bridge", "host", "none") and not mode.startswith(
            "container:"
        ):
            raise NotImplementedYet(
                f"network mode {mode!r}: user-defined networks need skiffd's networking"
            )
        elif host_config.get("PortBindings") and any(host_config["PortBindings"].values()):
            raise NotImplementedYet("publishing ports (-p) needs skiffd's networking")
        runtime_name = host_config.get("Runtime") or self.runtimes.default
        self.runtimes.path(runtime_name)
        host_config["Runtime"] = runtime_name
        # validate what can be validated before anything is written
        security = oci.security_options(
            host_config, default_no_new_privileges=self.security.no_new_privileges
        )
        idmap = idmap_for(host_config, self.security)
        if idmap is not None and host_config.get("Privileged"):
            raise InvalidArgument(
                "privileged mode is incompatible with user namespaces: "
                "run the container with --userns=host to use --privileged"
            )
        oci.user_mounts(
            self.plumbing.stripped(host_config) if self.plumbing else host_config, idmap
        )
        seccomp_for(security, oci.capabilities(host_config), self.security)
        oci.resources(host_config)
        config = oci.merge_config(image_info.get("Config") or {}, body)
        config["Image"] = image_ref
        for key in ("HostConfig", "NetworkingConfig"):
            config.pop(key, None)
        cid = secrets.token_hex(32)
        with self.lock:
            if name:
                if name.startswith("/"):
                    name = name[1:]
                if not name or not set(name) <= VALID_NAME or not name[0].isalnum():
                    raise InvalidArgument(
                        f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )
                if name in self.names:
                    raise Conflict(
                        f'Conflict. The container name "/{name}" is already in use by container "{self.names[name]}". '
                        "You have to remove (or rename) that container to be able to reuse that name."
                    )
            else:
                name = self._random_name()
            config.setdefault("Hostname", "")
            if not config.get("Hostname"):
                config["Hostname"] = cid[:12]
            c = Container(
                id=cid,
                name=name,
                created=now_rfc3339(),
                image_id=record.id,
                config=config,
                host_config=host_config,
                runtime=runtime_name,
                rootfs_key=cid,
            )
            self.names[name] = cid
            self.containers[cid] = c
        try:
            self.container_dir(cid).mkdir(parents=True)
            self._begin_prespawn(c)  # from here on the runtime starts up beside us
            self.images.prepare_container_rootfs(record.id, cid)
            if self.plumbing is not None:
                self.plumbing.plan(
                    cid,
                    self.container_dir(cid),
                    config,
                    host_config,
                    image_info.get("Config") or {},
                    body.get("NetworkingConfig"),
                    lambda ref: self.plumbing.mounts_view(self.container_dir(self.get(ref).id)),
                )
            oci.etc_files(
                container_id=cid,
                config=config,
                host_config=host_config,
                files_dir=str(self.container_dir(cid) / "etc"),
            )
            self.save(c)
        except BaseException:
            self._drop_prespawn(c)
            with self.lock:
                self.containers.pop(cid, None)
                self.names.pop(name, None)
            try:
                self.images.remove_container_rootfs(cid)
            except SkiffError:
                pass
            shutil.rmtree(self.container_dir(cid), ignore_errors=True)
            raise
        self.event(c, "create")
        warnings: list[str] = list(security.warnings)
        return c, warnings

    # ---- pre-spawn ---------------------------------------------------------------------
    MAX_PRESPAWNS = 4

    def _begin_prespawn(self, c: Container) -> None:
        """Spawn the shim and skiff-runtime's `create` now, gated, on a thread (the create's
        answer does not wait for it): `docker run` sends the start a few ms after the create,
        and the runtime's interpreter start-up and imports (~10 ms) then overlap that gap and
        the start's own preparation instead of following them. The start writes config.json
        and opens the gate (`_start_locked`); a removal, skiffd's exit or `prespawn_seconds`
        without a start closes it, and the runtime, having claimed nothing yet, exits. Best
        effort: when it fails the start spawns as usual."""
        if self.prespawn_seconds <= 0 or not is_skiff_runtime(self.runtimes.path(c.runtime)):
            return
        with self._prespawn_lock:
            if self._prespawns >= self.MAX_PRESPAWNS:
                return
            self._prespawns += 1
            c.prespawn_ready = threading.Event()
        threading.Thread(
            target=self._prespawn, args=(c,), name=f"prespawn-{c.id[:12]}", daemon=True
        ).start()

    def _prespawn(self, c: Container) -> None:
        ready = c.prespawn_ready
        gate_r = gate = -1
        try:
            bundle = self.run_dir(c.id) / "bundle"
            bundle.mkdir(parents=True, exist_ok=True)
            gate_r, gate = os.pipe2(os.O_CLOEXEC)
            launch = self._spawn_shim(c, bundle, gate_fd=gate_r)
        except (OSError, SkiffError) as err:
            log.debug("pre-spawn %s: %s", c.id[:12], err)
            if gate >= 0:
                os.close(gate)
            with self._prespawn_lock:
                self._prespawns -= 1
            if ready is not None:
                ready.set()
            return
        finally:
            if gate_r >= 0:
                os.close(gate_r)
        timer = threading.Timer(self.prespawn_seconds, self._drop_prespawn, args=(c,))
        timer.daemon = True
        with self._prespawn_lock:
            c.prespawned = (launch, gate, timer)
        timer.start()
        # The rootfs too, unless someone holds the container (a start waiting for us: it
        # mounts it itself; a copy): the overlay mount costs 0.5-4 ms of the start.
        if c.lock.acquire(blocking=False):
            try:
                if not c.removed and not c.state["Running"]:
                    self.mount_rootfs(c)
                    c.premounted = True
            except (OSError, SkiffError) as err:
                log.debug("pre-spawn %s: mount: %s", c.id[:12], err)
            finally:
                c.lock.release()
        if ready is not None:
            ready.set()

    def _take_prespawn(self, c: Container) -> tuple[shim_client.Launch, int] | None:
        """The pre-spawned shim and gate of `c`, now the caller's; None when there is none."""
        ready = c.prespawn_ready
        if ready is None:
            return None
        ready.wait(timeout=10)
        with self._prespawn_lock:
            pre = c.prespawned
            c.prespawned = None
            if ready.is_set():
                c.prespawn_ready = None
            if pre is None:
                return None
            self._prespawns -= 1
        launch, gate, timer = pre
        timer.cancel()
        return launch, gate

    def _drop_prespawn(self, c: Container) -> None:
        """Cancel a pre-spawned runtime: close its gate (the shim reports that and exits) and
        unmount the rootfs it mounted, unless something took that over meanwhile."""
        pre = self._take_prespawn(c)
        if pre is not None:
            launch, gate = pre
            os.close(gate)
            try:
                launch.drain()
            except OSError:
                pass
        with c.lock:
            if c.premounted:
                c.premounted = False
                if not c.state["Running"]:
                    self.unmount_rootfs(c)

    def _random_name(self) -> str:
        left = [
            "admiring",
            "brave",
            "clever",
            "eager",
            "gifted",
            "happy",
            "jolly",
            "keen",
            "lucid",
            "modest",
            "nifty",
            "quirky",
            "serene",
            "vibrant",
            "zen",
        ]
        right = [
            "albattani",
            "babbage",
            "curie",
            "darwin",
            "euler",
            "feynman",
            "gauss",
            "hopper",
            "lovelace",
            "noether",
            "pascal",
            "ritchie",
            "turing",
            "wozniak",
        ]
        while True:
            n = f"{secrets.choice(left)}_{secrets.choice(right)}"
            if n not in self.names:
                return n
            n += str(secrets.randbelow(10))
            if n not in self.names:
                return n

    # ---- rootfs ------------------------------------------------------------------------
    def mount_rootfs(self, c: Container) -> str:
        from skiff.linux.mount import mount_all

        target = self.rootfs_dir(c.id)
        target.mkdir(parents=True, exist_ok=True)
        if not os.path.ismount(target):
            mounts = self.images.container_mounts(c.rootfs_key)
            idmap = idmap_for(c.host_config, self.security)
            if idmap is not None:
                from skiff.engine import userns

                mounts = userns.remap_rootfs_mounts(
                    mounts,
                    self.data_root / "userns",
                    idmap,
                    shifted_marker=self.container_dir(c.id) / "userns-shifted",
                )
            mount_all(mounts, str(target))
        return str(target)

    def unmount_rootfs(self, c: Container) -> None:
        from skiff.linux.mount import unmount_all

        target = self.rootfs_dir(c.id)
        if target.exists():
            try:
                unmount_all(str(target))
            except SkiffError as err:
                log.warning("container %s: unmount rootfs: %s", c.id[:12], err)

    # ---- runtime -----------------------------------------------------------------------
    def runtime_cmd(
        self,
        c: Container,
        *args: str,
        check: bool = True,
        input: bytes | None = None,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [self.runtimes.path(c.runtime), "--root", self.runtime_root, *args]
        if args[0] in IN_PROCESS_VERBS and is_skiff_runtime(argv[0]):
            res = run_in_process(self.runtime_root, argv, list(args))
        else:
            res = subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
        if check and res.returncode != 0:
            msg = (res.stderr or res.stdout).decode(errors="replace").strip()
            raise FailedPrecondition(
                f"{os.path.basename(argv[0])} {args[0]} {c.id[:12]}: {msg or f'exit status {res.returncode}'}"
            )
        return res

    def runtime_delete(self, c: Container) -> None:
        """`<runtime> delete --force`, skipped when the runtime keeps no record of the container
        (runc and skiff-runtime keep one directory per container under --root)."""
        if not os.path.exists(os.path.join(self.runtime_root, c.id)):
            return
        self.runtime_cmd(c, "delete", "--force", c.id, check=False)
        if os.path.basename(self.runtimes.path(c.runtime)) != "skiff-runtime":
            # runc removes the container's cgroup but not the `skiff` parent it made
            from skiff.linux.cgroups import prune_empty_subtree

            prune_empty_subtree()

    def _namespace_path(self, mode: str, kind: str) -> str | None:
        if not mode.startswith("container:"):
            return None
        other = self.get(mode.split(":", 1)[1])
        if other.status is not Status.RUNNING:
            raise Conflict(
                f"cannot join {kind} namespace of a non running container: container {other.id} is not running"
            )
        return f"/proc/{other.state['Pid']}/ns/{kind}"

    def _seccomp(self, opts: oci.SecurityOptions, caps: list[str]) -> dict[str, Any] | None:
        """The container's OCI seccomp section: the daemon's default profile (skiff's builtin,
        Docker's semantics) unless --privileged, `seccomp=unconfined` or a profile of its own."""
        return seccomp_for(opts, caps, self.security)

    def _give_to_remapped_root(self, c: Container, volume_mounts: list[dict[str, Any]]) -> None:
        """userns-remap: the files skiffd writes for the container and its fresh volumes belong
        to the container's root, and the directories above them can be traversed by it."""
        from skiff.engine import userns

        idmap = idmap_for(c.host_config, self.security)
        if idmap is None:
            return
        for d in (self.data_root, self.data_root / "containers", self.container_dir(c.id)):
            userns.make_traversable(d)
        for d in (self.exec_root, self.exec_root / "containers", self.run_dir(c.id)):
            userns.make_traversable(d)
        files = self.container_dir(c.id) / "etc"
        if files.is_dir():
            userns.make_traversable(files)
            for name in os.listdir(files):
                userns.give_to_root(str(files / name), idmap)
        volumes = str(self.data_root / "volumes") + "/"
        for m in volume_mounts:
            src = str(m.get("source") or "")
            if src.startswith(volumes) and os.path.isdir(src) and os.stat(src).st_uid == 0:
                userns.give_to_root(src, idmap)
                parent = Path(src)
                while str(parent.parent).startswith(volumes.rstrip("/")):
                    parent = parent.parent
                    userns.make_traversable(parent)

    # ---- start -------------------------------------------------------------------------
    def start(self, ref: str) -> None:
        c = self.get(ref)
        with c.lock:
            if c.status.is_up():
                return  # docker answers 304 Not Modified; the API layer checks first
            if c.status is Status.REMOVING or c.removed:
                raise Conflict(f"container {c.id} is marked for removal and cannot be started")
            if c.restart_timer is not None:
                c.restart_timer.cancel()
                c.restart_timer = None
            c.manually_stopped = False
            try:
                self._start_locked(c)
            except SkiffError as err:
                c.state["Error"] = err.message
                c.state["ExitCode"] = (
                    127
                    if ("not found" in err.message or "no such file" in err.message)
                    else 126
                    if "permission denied" in err.message
                    else 128
                )
                if c.status is Status.RESTARTING:
                    c.set_status(Status.EXITED)
                self.save(c)
                if c.host_config.get("AutoRemove"):
                    threading.Thread(target=self._auto_remove, args=(c,), daemon=True).start()
                raise

    def _start_locked(self, c: Container) -> None:
        self.primer.kick()
        hc = c.host_config
        t0 = time.monotonic()
        pre = self._take_prespawn(c)  # spawned (and the rootfs mounted) at create, if any
        c.premounted = False  # the start owns the mount now
        try:
            rootfs = self.mount_rootfs(c)
        except BaseException:
            if pre is not None:
                os.close(pre[1])
                pre[0].drain()
            raise
        t_mount = time.monotonic()
        launch: shim_client.Launch | None = None
        gate = -1
        try:
            # a previous run may have left the runtime's record (skiffd died before cleanup)
            self.runtime_delete(c)
            bundle = self.run_dir(c.id) / "bundle"
            bundle.mkdir(parents=True, exist_ok=True)
            if pre is not None:
                launch, gate = pre  # spawned at create; it has been starting up since
            elif is_skiff_runtime(self.runtimes.path(c.runtime)):
                # Start the shim and skiff-runtime now: its `create` starts up while we wire
                # the network and write config.json, then waits for the gate (one byte).
                gate_r, gate = os.pipe2(os.O_CLOEXEC)
                try:
                    launch = self._spawn_shim(c, bundle, gate_fd=gate_r)
                finally:
                    os.close(gate_r)
            net = None
            volume_mounts: list[dict[str, Any]] = []
            if self.plumbing is not None:
                net, volume_mounts = self.plumbing.before_start(
                    c.id, c.name, self.container_dir(c.id), rootfs, c.config, hc
                )
            t_plumb = time.monotonic()
            caps = oci.capabilities(hc)
            security = oci.security_options(
                hc, default_no_new_privileges=self.security.no_new_privileges
            )
            idmap = idmap_for(hc, self.security)
            self._give_to_remapped_root(c, volume_mounts)
            spec = oci.build_spec(
                container_id=c.id,
                rootfs=rootfs,
                config=c.config,
                host_config=self.plumbing.stripped(hc) if self.plumbing else hc,
                files_dir=str(self.container_dir(c.id) / "etc"),
                netns_path=(net.netns_path if net is not None and net.netns_path else None)
                or self._namespace_path(hc.get("NetworkMode") or "", "net"),
                pidns_path=self._namespace_path(hc.get("PidMode") or "", "pid"),
                ipcns_path=self._namespace_path(hc.get("IpcMode") or "", "ipc"),
                init_binary=shim_client.find_init() if hc.get("Init") else None,
                seccomp=self._seccomp(security, caps),
                security=security,
                idmap=idmap,
            )
            if volume_mounts:
                taken = {m["destination"] for m in volume_mounts}
                spec["mounts"] = [
                    m for m in spec["mounts"] if m["destination"] not in taken
                ] + volume_mounts
            write_json_atomic(bundle / "config.json", spec, durable=False)
            t_spec = time.monotonic()
            if gate >= 0:
                try:
                    os.write(gate, b"1")
                except BrokenPipeError:  # a pre-spawned runtime that gave up: spawn anew
                    os.close(gate)
                    gate = -1
                    assert launch is not None
                    launch.drain()
                    launch = self._spawn_shim(c, bundle)
                else:
                    os.close(gate)
                    gate = -1
            else:
                launch = self._spawn_shim(c, bundle)
            assert launch is not None
            launch.expect_ready()
            pid = launch.expect_pid()
            t_create = time.monotonic()
        except BaseException as err:
            if gate >= 0:
                os.close(gate)  # the waiting runtime gives up; its shim reports that and exits
                if launch is not None:
                    launch.drain()
            if self.plumbing is not None:
                self.plumbing.after_exit(c.id)
            self.unmount_rootfs(c)
            if isinstance(err, FailedPrecondition):
                raise FailedPrecondition(
                    f"failed to create task for container: OCI runtime create failed: {err.message}"
                ) from err
            raise
        monitor = shim_client.connect(self.shim_dir(c.id))
        for session in c.pending_attach:
            session.connect(self.shim_dir(c.id))
        c.pending_attach.clear()
        try:
            self.runtime_cmd(c, "start", c.id)
        except SkiffError:
            monitor.close()
            self.runtime_delete(c)
            if self.plumbing is not None:
                self.plumbing.after_exit(c.id)
            self.unmount_rootfs(c)
            raise
        t_start = time.monotonic()
        c.state.update(fresh_state())
        c.set_status(Status.RUNNING)
        c.state["Pid"] = pid
        c.state["StartedAt"] = now_rfc3339()
        c.has_been_started = True
        self.save(c, durable=False)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "start %s: mount %.1f ms, network+volumes %.1f ms, spec %.1f ms, "
                "shim+create %.1f ms, start %.1f ms, save %.1f ms",
                c.id[:12],
                (t_mount - t0) * 1e3,
                (t_plumb - t_mount) * 1e3,
                (t_spec - t_plumb) * 1e3,
                (t_create - t_spec) * 1e3,
                (t_start - t_create) * 1e3,
                (time.monotonic() - t_start) * 1e3,
            )
        self.event(c, "start")
        self._watch(c, monitor)
        self._start_health(c)
        c.changed.notify_all()

    def _spawn_shim(
        self, c: Container, bundle: Path, gate_fd: int | None = None
    ) -> shim_client.Launch:
        hc = c.host_config
        log_type = (hc.get("LogConfig") or {}).get("Type", "json-file")
        max_size, max_files = self.log_rotation(hc)
        return shim_client.spawn(
            shim_client.ShimSpec(
                shim_dir=self.shim_dir(c.id),
                runtime=self.runtimes.path(c.runtime),
                runtime_root=self.runtime_root,
                process_id=c.id,
                bundle=str(bundle),
                log_path=None if log_type == "none" else self.log_path(c),
                log_max_size=max_size,
                log_max_files=max_files,
                tty=bool(c.config.get("Tty")),
                stdin=bool(c.config.get("OpenStdin")),
                gate_fd=gate_fd,
                runtime_env=self._primed_env(),
            )
        )

    def _primed_env(self) -> dict[str, str] | None:
        """While skiffd's primer keeps the cgroup attach fast (it was kicked by this create,
        start or exec), the runtime need not prime it again: a fork and a thread less."""
        return None if self.primer.disabled else {"SKIFF_RUNTIME_NO_CGROUP_PRIMING": "1"}

    def _watch(self, c: Container, monitor: socket.socket) -> None:
        def run() -> None:
            while True:
                f = shim_client.read_frame(monitor)
                if f is None or f[0] == shim_client.EXIT:
                    break
            monitor.close()
            self._on_exit(c)

        threading.Thread(target=run, name=f"watch-{c.id[:12]}", daemon=True).start()

    def _on_exit(self, c: Container) -> None:
        record = None
        for _ in range(50):
            record = shim_client.read_exit(self.shim_dir(c.id))
            if record is not None:
                break
            time.sleep(0.05)
        with c.lock:
            if not c.state["Running"] and c.status is not Status.RESTARTING:
                return
            self._finish_exit(c, record)

    def _finish_exit(self, c: Container, record: dict[str, Any] | None) -> None:
        """Bookkeeping after the container's process exited (the lock is held)."""
        if c.health_stop is not None:
            c.health_stop.set()
            c.health_stop = None
        t0 = time.monotonic()
        oom = self._oom_killed(c)
        self.runtime_delete(c)
        t_delete = time.monotonic()
        if self.plumbing is not None:
            self.plumbing.after_exit(c.id)
        t_net = time.monotonic()
        self.unmount_rootfs(c)
        shutil.rmtree(self.shim_dir(c.id), ignore_errors=True)  # its exit record is consumed here
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "exit %s: runtime delete %.1f ms, network %.1f ms, unmount %.1f ms",
                c.id[:12],
                (t_delete - t0) * 1e3,
                (t_net - t_delete) * 1e3,
                (time.monotonic() - t_net) * 1e3,
            )
        code = int(record["exit_code"]) if record else 255
        c.set_status(Status.EXITED)
        c.state["Pid"] = 0
        c.state["ExitCode"] = code
        c.state["OOMKilled"] = oom
        c.state["FinishedAt"] = record["finished_at"] if record else now_rfc3339()
        if record is None:
            c.state["Error"] = "the container's shim exited without recording an exit status"
        if "Health" in c.state:
            c.state["Health"]["Status"] = (
                "unhealthy" if c.state["Health"]["Status"] != "healthy" else "healthy"
            )
        c.exit_seq += 1
        if oom:
            self.event(c, "oom")
        self.event(c, "die", exitCode=str(code))
        self.save(c, durable=False)
        c.changed.notify_all()
        if c.host_config.get("AutoRemove"):
            threading.Thread(target=self._auto_remove, args=(c,), daemon=True).start()
            return
        self._maybe_restart(c, code)

    def _oom_killed(self, c: Container) -> bool:
        for path in self._cgroup_dirs(c, "memory"):
            try:
                with open(os.path.join(path, "memory.oom_control")) as f:
                    for line in f:
                        if line.startswith("oom_kill ") and int(line.split()[1]) > 0:
                            return True
            except OSError:
                continue
        return False

    def _auto_remove(self, c: Container) -> None:
        try:
            self.remove(c.id, force=True)
        except SkiffError as err:
            log.warning("auto-remove %s: %s", c.id[:12], err)

    def _maybe_restart(self, c: Container, code: int) -> None:
        policy = c.host_config.get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if c.manually_stopped or c.removed or name == "no":
            return
        if name == "on-failure":
            if code == 0:
                return
            limit = int(policy.get("MaximumRetryCount") or 0)
            if limit and c.restart_count >= limit:
                return
        started = c.state.get("StartedAt", ZERO_TIME)
        ran_for = time.time() - _parse_ts(started)
        delay = 0.1 * (2 ** min(c.restart_count, 10)) if ran_for < 10 else 0.1
        delay = min(delay, RESTART_MAX_DELAY)
        c.set_status(Status.RESTARTING)
        self.save(c)

        def restart() -> None:
            with c.lock:
                if c.status is not Status.RESTARTING or c.removed or c.manually_stopped:
                    return
                c.restart_timer = None
                c.restart_count += 1
                try:
                    self._start_locked(c)
                    self.event(c, "restart")
                except SkiffError as err:
                    log.warning("restart %s: %s", c.id[:12], err)
                    c.state["Error"] = err.message
                    c.set_status(Status.EXITED)
                    self.save(c)
                    c.changed.notify_all()

        c.restart_timer = threading.Timer(delay, restart)
        c.restart_timer.daemon = True
        c.restart_timer.start()

    # ---- adopt on daemon start ---------------------------------------------------------
    def load_and_reconcile(self) -> None:
        root = self.data_root / "containers"
        for entry in sorted(root.iterdir()):
            path = entry / "config.v2.json"
            if not path.exists():
                # a create cut short by a crash: drop its rootfs snapshot and directory
                try:
                    self.images.remove_container_rootfs(entry.name)
                except SkiffError:
                    pass
                shutil.rmtree(entry, ignore_errors=True)
                continue
            try:
                c = Container.from_disk(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError) as err:
                log.error("container state %s: %s; skipped", path, err)
                continue
            self.containers[c.id] = c
            self.names[c.name] = c.id
        for c in list(self.containers.values()):
            try:
                self._reconcile(c)
            except SkiffError as err:
                log.error("reconcile %s: %s", c.id[:12], err)
        if self.plumbing is not None:
            running = {c.id for c in self.containers.values() if c.state.get("Running")}
            self.plumbing.reconcile(running, set(self.containers))

    def _reconcile(self, c: Container) -> None:
        with c.lock:
            if c.status is Status.REMOVING:
                c.set_status(Status.EXITED)
                self.remove(c.id, force=True)
                return
            shim_dir = self.shim_dir(c.id)
            if not (c.state["Running"] or c.status is Status.RESTARTING):
                if shim_dir.exists():
                    self._reconcile_unrecorded_start(c, shim_dir)
                elif os.path.ismount(self.rootfs_dir(c.id)):
                    # skiffd died between mounting the rootfs and starting the shim
                    self.runtime_delete(c)
                    self.unmount_rootfs(c)
                return
            try:
                monitor = shim_client.connect(shim_dir)
            except SkiffError:
                monitor = None
            if monitor is not None:
                log.info("container %s: adopted (pid %s)", c.id[:12], c.state["Pid"])
                self._watch(c, monitor)
                self._start_health(c)
                return
            record = shim_client.read_exit(shim_dir)
            if record is None and c.status is Status.RESTARTING:
                c.set_status(Status.EXITED)
                self._maybe_restart(c, c.state.get("ExitCode", 0))
                return
            if record is None:
                # shim gone without an exit record: kill what may be left of the container
                self.runtime_cmd(c, "kill", c.id, "KILL", check=False)
            self._finish_exit(c, record)

    def _reconcile_unrecorded_start(self, c: Container, shim_dir: Path) -> None:
        """skiffd died between starting a shim and recording the start: adopt or clean up."""
        try:
            monitor: socket.socket | None = shim_client.connect(shim_dir)
        except SkiffError:
            monitor = None
        pid = shim_client.read_pid(shim_dir)
        if monitor is not None and pid and self._runtime_status(c) == "created":
            # the process exists but was never started (skiffd died before `start`): the
            # client got an error, so nothing runs; the container stays "created"
            log.info("container %s: start was cut short by a crash; not starting it", c.id[:12])
            monitor.close()
            monitor = None
        if monitor is not None and pid:
            c.set_status(Status.RUNNING)
            c.state["Pid"] = pid
            c.state["StartedAt"] = now_rfc3339()
            c.has_been_started = True
            self.save(c)
            log.info("container %s: adopted a start that was not recorded (pid %s)", c.id[:12], pid)
            self._watch(c, monitor)
            self._start_health(c)
            return
        if monitor is not None:
            monitor.close()
        # no process worth keeping: make sure nothing of it is left behind
        if os.path.exists(os.path.join(self.runtime_root, c.id)):
            self.runtime_cmd(c, "kill", c.id, "KILL", check=False)
        self.runtime_delete(c)
        if self.plumbing is not None:
            self.plumbing.after_exit(c.id)
        self.unmount_rootfs(c)
        shutil.rmtree(shim_dir, ignore_errors=True)

    def _runtime_status(self, c: Container) -> str:
        """The runtime's own status of the container ("" when it has no record of it)."""
        res = self.runtime_cmd(c, "state", c.id, check=False)
        if res.returncode != 0:
            return ""
        try:
            return str(json.loads(res.stdout).get("status") or "")
        except ValueError:
            return ""

    # ---- stop / kill -------------------------------------------------------------------
    def kill(self, ref: str, sig: str | int | None = None) -> None:
        c = self.get(ref)
        signum = oci.parse_signal(sig, _signal.SIGKILL)
        with c.lock:
            if not c.state["Running"] or c.status is Status.RESTARTING:
                raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
            if signum == oci.parse_signal(c.config.get("StopSignal") or "SIGTERM"):
                c.manually_stopped = True  # like dockerd: the stop signal means "do not restart"
            self.runtime_cmd(c, "kill", c.id, str(signum))
        self.event(c, "kill", signal=str(signum))

    def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> bool:
        """Returns False when the container was not running (docker answers 304)."""
        c = self.get(ref)
        with c.lock:
            if c.restart_timer is not None:
                c.restart_timer.cancel()
                c.restart_timer = None
            c.manually_stopped = True
            if c.status is Status.RESTARTING:
                c.set_status(Status.EXITED)
                self.save(c)
                c.changed.notify_all()
                return True
            if not c.state["Running"]:
                self.save(c)
                return False
            self.save(c)
            seq = c.exit_seq
            if c.status is Status.PAUSED:
                self.runtime_cmd(c, "resume", c.id, check=False)
                c.set_status(Status.RUNNING)
            stop_signal = oci.parse_signal(sig or c.config.get("StopSignal") or "SIGTERM")
            if timeout is None:
                timeout = c.config.get("StopTimeout")
            if timeout is None:
                timeout = 10
            self.runtime_cmd(c, "kill", c.id, str(stop_signal), check=False)
            self.event(c, "kill", signal=str(stop_signal))
            deadline = time.monotonic() + (timeout if timeout >= 0 else 1e9)
            while c.exit_seq == seq and time.monotonic() < deadline:
                c.changed.wait(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            if c.exit_seq == seq:
                self.runtime_cmd(c, "kill", c.id, "KILL", check=False)
                self.event(c, "kill", signal="9")
                deadline = time.monotonic() + 30
                while c.exit_seq == seq and time.monotonic() < deadline:
                    c.changed.wait(timeout=1.0)
        self.event(c, "stop")
        return True

    def restart(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        self.stop(c.id, timeout, sig)
        self.start(c.id)
        self.event(c, "restart")

    def pause(self, ref: str) -> None:
        c = self.get(ref)
        with c.lock:
            if c.status is not Status.RUNNING:
                if c.status is Status.PAUSED:
                    raise Conflict(f"container {c.id} is already paused")
                raise Conflict(f"container {c.id} is not running")
            self.runtime_cmd(c, "pause", c.id)
            c.set_status(Status.PAUSED)
            self.save(c)
        self.event(c, "pause")

    def unpause(self, ref: str) -> None:
        c = self.get(ref)
        with c.lock:
            if c.status is not Status.PAUSED:
                raise Conflict(f"container {c.id} is not paused")
            self.runtime_cmd(c, "resume", c.id)
            c.set_status(Status.RUNNING)
            self.save(c)
        self.event(c, "unpause")

    # ---- wait --------------------------------------------------------------------------
    def wait(
        self, ref: str, condition: str = "not-running", closed: Callable[[], bool] = lambda: False
    ) -> dict[str, Any]:
        c = self.get(ref)
        condition = condition or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        with c.lock:
            seq = c.exit_seq
            while not closed():
                if condition == "removed":
                    if c.removed:
                        break
                elif condition == "next-exit":
                    if c.exit_seq != seq:
                        break
                elif (
                    not c.state["Running"]
                    and c.status is not Status.RESTARTING
                    and c.status is not Status.CREATED
                ) or (c.status is Status.CREATED and condition == "not-running"):
                    break
                c.changed.wait(timeout=1.0)
            return {"StatusCode": c.state["ExitCode"]}

    # ---- remove / rename / update ------------------------------------------------------
    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        with c.lock:
            if c.removed:
                return
            if c.state["Running"] and c.status is not Status.RESTARTING:
                if not force:
                    what = "paused" if c.status is Status.PAUSED else "running"
                    raise Conflict(
                        f'cannot remove container "/{c.name}": container is {what}: stop the container before removing or force remove'
                    )
                c.manually_stopped = True
                self.save(c)
                if c.status is Status.PAUSED:
                    self.runtime_cmd(c, "resume", c.id, check=False)
                seq = c.exit_seq
                self.runtime_cmd(c, "kill", c.id, "KILL", check=False)
                deadline = time.monotonic() + 30
                while c.exit_seq == seq and time.monotonic() < deadline:
                    c.changed.wait(timeout=1.0)
            if c.restart_timer is not None:
                c.restart_timer.cancel()
            self._drop_prespawn(c)
            t0 = time.monotonic()
            c.set_status(Status.REMOVING)
            self.save(c, durable=False)
            t_save = time.monotonic()
            self.runtime_delete(c)
            self.unmount_rootfs(c)
            t_unmount = time.monotonic()
            try:
                self.images.remove_container_rootfs(c.rootfs_key)
            except NotFound:
                pass
            t_snap = time.monotonic()
            if self.plumbing is not None:
                self.plumbing.on_remove(c.id, self.container_dir(c.id), remove_anonymous=volumes)
            t_plumb = time.monotonic()
            shutil.rmtree(self.run_dir(c.id), ignore_errors=True)
            shutil.rmtree(self.shim_dir(c.id), ignore_errors=True)
            shutil.rmtree(self.container_dir(c.id), ignore_errors=True)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "remove %s: save %.1f ms, unmount %.1f ms, snapshot %.1f ms, "
                    "volumes %.1f ms, dirs %.1f ms",
                    c.id[:12],
                    (t_save - t0) * 1e3,
                    (t_unmount - t_save) * 1e3,
                    (t_snap - t_unmount) * 1e3,
                    (t_plumb - t_snap) * 1e3,
                    (time.monotonic() - t_plumb) * 1e3,
                )
            with self.lock:
                self.containers.pop(c.id, None)
                if self.names.get(c.name) == c.id:
                    self.names.pop(c.name, None)
                for eid in [e for e, rec in self.execs.items() if rec.container_id == c.id]:
                    self.execs.pop(eid, None)
            c.removed = True
            c.changed.notify_all()
            for session in c.pending_attach:
                session.cancel("container removed")
        self.event(c, "destroy")

    def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        new_name = new_name.lstrip("/")
        if not new_name or not set(new_name) <= VALID_NAME:
            raise InvalidArgument(
                f"Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )
        with self.lock:
            if new_name in self.names:
                raise Conflict(
                    f'Conflict. The container name "/{new_name}" is already in use by container "{self.names[new_name]}". '
                    "You have to remove (or rename) that container to be able to reuse that name."
                )
            old = c.name
            self.names.pop(old, None)
            self.names[new_name] = c.id
            c.name = new_name
        with c.lock:
            self.save(c)
        self.event(c, "rename", oldName="/" + old)

    def update(self, ref: str, body: dict[str, Any]) -> list[str]:
        c = self.get(ref)
        keys = (
            "Memory",
            "MemorySwap",
            "MemoryReservation",
            "NanoCpus",
            "CpuShares",
            "CpuQuota",
            "CpuPeriod",
            "CpusetCpus",
            "CpusetMems",
            "PidsLimit",
            "BlkioWeight",
        )
        with c.lock:
            new = dict(c.host_config)
            for k in keys:
                if k in body and body[k] not in (None, ""):
                    if body[k] == 0 and k != "PidsLimit":
                        continue
                    new[k] = body[k]
            if (
                body.get("Memory")
                and not body.get("MemorySwap")
                and c.host_config.get("MemorySwap", 0) not in (0, -1)
                and int(body["Memory"]) > int(c.host_config["MemorySwap"])
            ):
                raise InvalidArgument(
                    "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
                )
            if (
                "RestartPolicy" in body
                and body["RestartPolicy"]
                and body["RestartPolicy"].get("Name")
            ):
                new["RestartPolicy"] = {
                    "Name": body["RestartPolicy"]["Name"],
                    "MaximumRetryCount": int(body["RestartPolicy"].get("MaximumRetryCount") or 0),
                }
            res = oci.resources(new)
            if c.state["Running"]:
                res.pop("devices", None)
                self.runtime_cmd(
                    c, "update", "--resources", "-", c.id, input=json.dumps(res).encode()
                )
            c.host_config = new
            self.save(c)
        self.event(c, "update")
        return []

    # ---- attach ------------------------------------------------------------------------
    def attach(self, ref: str, *, stdin: bool, stdout: bool, stderr: bool) -> AttachSession:
        c = self.get(ref)
        want = (shim_client.WANT_STDOUT if stdout else 0) | (
            shim_client.WANT_STDERR if stderr else 0
        )
        session = AttachSession(want, stdin)
        with c.lock:
            if c.state["Running"] and c.status is not Status.RESTARTING:
                session.connect(self.shim_dir(c.id))
            else:
                c.pending_attach.append(session)
        self.event(c, "attach")
        return session

    def detach_pending(self, ref: str, session: AttachSession) -> None:
        try:
            c = self.get(ref)
        except NotFound:
            return
        with c.lock:
            if session in c.pending_attach:
                c.pending_attach.remove(session)

    def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        if not c.state["Running"]:
            raise Conflict(f"Container {c.id} is not running")
        self._send_resize(self.shim_dir(c.id), height, width)

    @staticmethod
    def _send_resize(shim_dir: Path, height: int, width: int) -> None:
        sock = shim_client.connect(shim_dir, 0, timeout=5)
        try:
            sock.sendall(shim_client.frame(shim_client.RESIZE, f"{height} {width}".encode()))
        finally:
            sock.close()

    # ---- exec --------------------------------------------------------------------------
    def exec_create(self, ref: str, body: dict[str, Any]) -> ExecRecord:
        c = self.get(ref)
        if not c.state["Running"] or c.status is Status.RESTARTING:
            raise Conflict(f"Container {c.id} is not running")
        if c.status is Status.PAUSED:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if not body.get("Cmd"):
            raise InvalidArgument("No exec command specified")
        self._check_exec_userns(c)
        eid = secrets.token_hex(32)
        rec = ExecRecord(id=eid, container_id=c.id, config=dict(body))
        with self.lock:
            self.execs[eid] = rec
        self.event(c, f"exec_create: {' '.join(body['Cmd'])}", execID=eid)
        return rec

    def _check_exec_userns(self, c: Container) -> None:
        """A remapped container that joined a namespace by path (the network namespace skiffd's
        networking made, `container:` modes) cannot be exec'd into: runtimes enter the user
        namespace first and may then not enter a namespace the host's user namespace owns.
        (dockerd lets runc create the netns inside the container's user namespace and
        configures it from a prestart hook; skiff's networking does not do that yet.)"""
        if idmap_for(c.host_config, self.security) is None:
            return
        try:
            spec = json.loads((self.run_dir(c.id) / "bundle" / "config.json").read_text())
        except (OSError, ValueError):
            return
        joined = [
            n["type"]
            for n in spec.get("linux", {}).get("namespaces", [])
            if n.get("path") and n.get("type") != "user"
        ]
        if joined:
            raise NotImplementedYet(
                f"exec in userns-remapped container {c.id[:12]}: it joined the host-owned "
                f"{', '.join(joined)} namespace(s), which the runtime cannot enter from the "
                "container's user namespace (run the container with --userns=host to exec into it)"
            )

    def exec_get(self, eid: str) -> ExecRecord:
        with self.lock:
            rec = self.execs.get(eid)
            if rec is None:
                matches = [r for k, r in self.execs.items() if k.startswith(eid)] if eid else []
                if len(matches) == 1:
                    return matches[0]
                raise NotFound(f"No such exec instance: {eid}")
            return rec

    def exec_shim_dir(self, rec: ExecRecord) -> Path:
        return self.exec_root / "shims" / ("x" + rec.id[:31])

    def exec_start(
        self, eid: str, *, detach: bool, tty: bool | None = None
    ) -> AttachSession | None:
        rec = self.exec_get(eid)
        c = self.get(rec.container_id)
        if rec.started:
            raise Conflict(f"exec {eid} has already been started")
        if not c.state["Running"]:
            raise Conflict(f"Container {c.id} is not running")
        rec.started = True
        cfg = rec.config
        if tty is not None and "Tty" not in cfg:
            cfg["Tty"] = tty
        rootfs = str(self.rootfs_dir(c.id))
        env = oci.merge_env(c.config.get("Env") or [], cfg.get("Env") or [])
        caps = oci.capabilities(
            {
                **c.host_config,
                "Privileged": cfg.get("Privileged") or c.host_config.get("Privileged"),
            }
        )
        process = {
            "terminal": bool(cfg.get("Tty")),
            "user": oci.resolve_user(rootfs, cfg.get("User") or c.config.get("User") or ""),
            "args": list(cfg["Cmd"]),
            "env": env
            + (
                ["TERM=xterm"]
                if cfg.get("Tty") and not any(e.startswith("TERM=") for e in env)
                else []
            ),
            "cwd": cfg.get("WorkingDir") or c.config.get("WorkingDir") or "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": oci.security_options(
                c.host_config, default_no_new_privileges=self.security.no_new_privileges
            ).no_new_privileges,
        }
        sdir = self.exec_shim_dir(rec)
        sdir.mkdir(parents=True, exist_ok=True)
        try:
            return self._exec_spawn(c, rec, sdir, process, attach=not detach)
        except BaseException:
            rec.running = False
            rec.done.set()
            shutil.rmtree(sdir, ignore_errors=True)
            raise

    def _exec_spawn(
        self, c: Container, rec: ExecRecord, sdir: Path, process: dict[str, Any], attach: bool
    ) -> AttachSession | None:
        self.primer.kick()
        cfg = rec.config
        write_json_atomic(sdir / "process.json", process, durable=False)
        launch = shim_client.spawn(
            shim_client.ShimSpec(
                shim_dir=sdir,
                runtime=self.runtimes.path(c.runtime),
                runtime_root=self.runtime_root,
                process_id=c.id,
                exec_process=str(sdir / "process.json"),
                tty=bool(cfg.get("Tty")),
                stdin=bool(cfg.get("AttachStdin")) and attach,
                wait_start=True,
                runtime_env=self._primed_env(),
            )
        )
        launch.expect_ready()
        session = None
        if attach:
            want = (shim_client.WANT_STDOUT if cfg.get("AttachStdout", True) else 0) | (
                shim_client.WANT_STDERR if cfg.get("AttachStderr", True) else 0
            )
            session = AttachSession(want, bool(cfg.get("AttachStdin")))
            session.connect(sdir)
        monitor = shim_client.connect(sdir)
        monitor.sendall(shim_client.frame(shim_client.START))
        try:
            rec.pid = launch.expect_pid()
        except SkiffError as err:
            rec.exit_code = (
                126
                if "permission denied" in err.message
                else 127
                if ("not found" in err.message or "no such file" in err.message)
                else 126
            )
            rec.done.set()
            monitor.close()
            if session and session.sock:
                session.sock.close()
            shutil.rmtree(sdir, ignore_errors=True)
            raise FailedPrecondition(f"OCI runtime exec failed: {err.message}") from err
        rec.running = True
        self.event(c, f"exec_start: {' '.join(cfg['Cmd'])}", execID=rec.id)

        def watch() -> None:
            while True:
                f = shim_client.read_frame(monitor)
                if f is None or f[0] == shim_client.EXIT:
                    break
            monitor.close()
            exit_rec = None
            for _ in range(50):
                exit_rec = shim_client.read_exit(sdir)
                if exit_rec is not None:
                    break
                time.sleep(0.05)
            rec.exit_code = int(exit_rec["exit_code"]) if exit_rec else 255
            rec.running = False
            rec.done.set()
            self.event(c, "exec_die", execID=rec.id, exitCode=str(rec.exit_code))
            shutil.rmtree(sdir, ignore_errors=True)

        threading.Thread(target=watch, name=f"exec-{rec.id[:12]}", daemon=True).start()
        return session

    def exec_resize(self, eid: str, height: int, width: int) -> None:
        rec = self.exec_get(eid)
        if not rec.running:
            raise Conflict(f"exec {eid} is not running")
        self._send_resize(self.exec_shim_dir(rec), height, width)

    def exec_run_sync(self, c: Container, cmd: list[str], timeout: float) -> tuple[int, bytes]:
        """Run a command in the container and collect its output (for healthchecks)."""
        rootfs = str(self.rootfs_dir(c.id))
        process = {
            "terminal": False,
            "user": oci.resolve_user(rootfs, c.config.get("User") or ""),
            "args": cmd,
            "env": list(c.config.get("Env") or []),
            "cwd": c.config.get("WorkingDir") or "/",
        }
        path = self.run_dir(c.id) / f"health-{secrets.token_hex(4)}.json"
        write_json_atomic(path, process, durable=False)
        try:
            res = subprocess.run(
                [
                    self.runtimes.path(c.runtime),
                    "--root",
                    self.runtime_root,
                    "exec",
                    "--process",
                    str(path),
                    c.id,
                ],
                capture_output=True,
                timeout=timeout,
            )
            return res.returncode, res.stdout + res.stderr
        except subprocess.TimeoutExpired:
            return -1, f"Health check exceeded timeout ({timeout}s)".encode()
        finally:
            path.unlink(missing_ok=True)

    # ---- healthchecks ------------------------------------------------------------------
    def _start_health(self, c: Container) -> None:
        hcfg = c.config.get("Healthcheck") or {}
        test = hcfg.get("Test") or []
        if not test or test[0] == "NONE":
            return
        if test[0] == "CMD-SHELL":
            cmd = ["/bin/sh", "-c", " ".join(test[1:])]
        elif test[0] == "CMD":
            cmd = list(test[1:])
        else:
            cmd = list(test)
        interval = (hcfg.get("Interval") or 30_000_000_000) / 1e9
        timeout = (hcfg.get("Timeout") or 30_000_000_000) / 1e9
        retries = hcfg.get("Retries") or 3
        start_period = (hcfg.get("StartPeriod") or 0) / 1e9
        stop = threading.Event()
        c.health_stop = stop
        c.state["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
        started = time.monotonic()

        def run() -> None:
            while not stop.wait(interval):
                begin = now_rfc3339()
                try:
                    code, out = self.exec_run_sync(c, cmd, timeout)
                except (SkiffError, OSError) as err:
                    code, out = -1, str(err).encode()
                with c.lock:
                    if stop.is_set():
                        return
                    health = c.state["Health"]
                    health["Log"] = [
                        *health["Log"][-4:],
                        {
                            "Start": begin,
                            "End": now_rfc3339(),
                            "ExitCode": code,
                            "Output": out.decode(errors="replace")[:4096],
                        },
                    ]
                    old = health["Status"]
                    if code == 0:
                        health["FailingStreak"] = 0
                        health["Status"] = "healthy"
                    elif time.monotonic() - started >= start_period:
                        health["FailingStreak"] += 1
                        if health["FailingStreak"] >= retries:
                            health["Status"] = "unhealthy"
                    self.save(c)  # the log changes on every probe
                    if health["Status"] != old:
                        self.event(c, f"health_status: {health['Status']}")

        threading.Thread(target=run, name=f"health-{c.id[:12]}", daemon=True).start()

    # ---- top / stats / changes ---------------------------------------------------------
    def top(self, ref: str, ps_args: str = "-ef") -> dict[str, Any]:
        c = self.get(ref)
        if not c.state["Running"]:
            raise Conflict(f"Container {c.id} is not running")
        res = self.runtime_cmd(c, "ps", "--format", "json", c.id)
        pids = {int(p) for p in json.loads(res.stdout or b"[]")}
        out = subprocess.run(["ps", *(ps_args or "-ef").split()], capture_output=True, text=True)
        if out.returncode != 0:
            raise InvalidArgument(f"Error running ps: {out.stderr.strip()}")
        lines = out.stdout.splitlines()
        if not lines:
            return {"Titles": [], "Processes": []}
        titles = lines[0].split()
        if "PID" not in titles:
            raise InvalidArgument("Couldn't find PID field in ps output")
        pid_index = titles.index("PID")
        procs = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if (
                len(fields) > pid_index
                and fields[pid_index].isdigit()
                and int(fields[pid_index]) in pids
            ):
                procs.append(fields)
        return {"Titles": titles, "Processes": procs}

    def _cgroup_dirs(self, c: Container, controller: str) -> list[str]:
        """The container's cgroup directory for a v1 controller (relative to skiffd's own)."""
        own = ""
        try:
            with open("/proc/self/cgroup") as f:
                for line in f:
                    _, ctrls, path = line.rstrip("\n").split(":", 2)
                    if controller in ctrls.split(","):
                        own = path
        except OSError:
            return []
        base = f"/sys/fs/cgroup/{controller}"
        candidates = [os.path.join(base + own, "skiff", c.id), os.path.join(base, "skiff", c.id)]
        if c.state.get("Pid"):
            try:
                with open(f"/proc/{c.state['Pid']}/cgroup") as f:
                    for line in f:
                        _, ctrls, path = line.rstrip("\n").split(":", 2)
                        if controller in ctrls.split(","):
                            candidates.insert(0, base + path)
            except OSError:
                pass
        return [p for p in candidates if os.path.isdir(p)]

    def stats(self, ref: str) -> dict[str, Any]:
        from skiff.engine.stats import collect

        c = self.get(ref)
        return collect(c, self._cgroup_dirs)

    def changes(self, ref: str) -> list[dict[str, Any]]:
        c = self.get(ref)
        return list(self.images.changes(c.rootfs_key))

    def _refuse_remapped(self, c: Container, what: str) -> None:
        if idmap_for(c.host_config, self.security) is not None:
            raise NotImplementedYet(
                f"{what} of container {c.id[:12]}: its files are owned by the userns-remap range "
                "and shifting them back to image ids is not implemented yet"
            )

    def export(self, ref: str, out: Any) -> None:
        c = self.get(ref)
        self._refuse_remapped(c, "export")
        self.images.export_container(c.rootfs_key, out)
        self.event(c, "export")

    def rootfs_for_archive(self, ref: str) -> tuple[Container, str, bool]:
        """The container's mounted rootfs; the flag says whether the caller must unmount it."""
        c = self.get(ref)
        with c.lock:
            if c.state["Running"]:
                return c, str(self.rootfs_dir(c.id)), False
            c.premounted = False  # ours to unmount now (release_archive_rootfs)
            return c, self.mount_rootfs(c), True

    def release_archive_rootfs(self, c: Container) -> None:
        with c.lock:
            if not c.state["Running"]:
                self.unmount_rootfs(c)

    def commit(
        self,
        ref: str,
        *,
        repo_ref: str | None,
        config: dict[str, Any] | None,
        comment: str,
        author: str,
        changes: list[str],
        pause: bool,
    ) -> str:
        c = self.get(ref)
        self._refuse_remapped(c, "commit")
        paused_here = False
        if pause and c.status is Status.RUNNING:
            self.runtime_cmd(c, "pause", c.id, check=False)
            paused_here = True
        try:
            merged = dict(c.config)
            for k in (
                "Hostname",
                "Domainname",
                "AttachStdin",
                "AttachStdout",
                "AttachStderr",
                "Image",
            ):
                merged.pop(k, None)
            if config:
                merged.update({k: v for k, v in config.items() if v not in (None, "", [], {})})
            image_id: str = self.images.commit(
                c.rootfs_key,
                c.image_id,
                ref=repo_ref,
                config=merged,
                comment=comment,
                author=author,
                changes=changes,
            )
        finally:
            if paused_here:
                self.runtime_cmd(c, "resume", c.id, check=False)
        self.event(c, "commit")
        return image_id

    def in_use_images(self) -> set[str]:
        return {c.image_id for c in self.all()}

    def prune(self, accept: Callable[[Container], bool]) -> tuple[list[str], int]:
        removed = []
        for c in self.all():
            if c.state["Running"] or c.status is Status.RESTARTING or not accept(c):
                continue
            try:
                self.remove(c.id)
                removed.append(c.id)
            except SkiffError:
                continue
        return removed, 0

    def shutdown(self) -> None:
        """skiffd is stopping: containers keep running under their shims; timers stop."""
        for c in self.all():
            if c.restart_timer is not None:
                c.restart_timer.cancel()
            if c.health_stop is not None:
                c.health_stop.set()
            self._drop_prespawn(c)

    def logs(self, ref: str, **kwargs: Any) -> tuple[Container, Iterator[tuple[str, str, bytes]]]:
        from skiff.engine.logs import read_logs

        c = self.get(ref)
        if (c.host_config.get("LogConfig") or {}).get("Type") == "none":
            raise InvalidArgument(
                'configured logging driver does not support reading: the "none" driver keeps no logs'
            )

        def running() -> bool:
            return bool(c.state["Running"] or c.status is Status.RESTARTING) and not c.removed

        return c, read_logs(self.log_path(c), still_running=running, **kwargs)


# ---- skiff-runtime in-process ---------------------------------------------------------
# `start`, `kill`, `delete`, `pause` and `resume` of skiff-runtime are a few syscalls and file
# operations: skiffd calls the runtime's library for them instead of paying for a Python
# process each (15-25 ms). `create` still runs the command (under the shim, which becomes the
# container's parent), and so does every other runtime. Same state directory, same semantics,
# same error texts: a CLI started later sees exactly what the command would have left.
IN_PROCESS_VERBS = frozenset({"start", "kill", "delete", "pause", "resume"})
_skiff_runtime_paths: dict[str, bool] = {}


def is_skiff_runtime(path: str) -> bool:
    """Whether `path` is the skiff-runtime command (by name, through links)."""
    known = _skiff_runtime_paths.get(path)
    if known is None:
        known = os.path.basename(os.path.realpath(path)) == "skiff-runtime"
        _skiff_runtime_paths[path] = known
    return known


def run_in_process(
    root: str, argv: list[str], args: list[str]
) -> subprocess.CompletedProcess[bytes]:
    """Run one runtime verb through skiff-runtime's library; the result looks like the
    command's (status 1 and its one-line error on stderr when it fails)."""
    from skiff.runtime import lifecycle

    verb, rest = args[0], args[1:]
    force = "--force" in rest or "-f" in rest
    kill_all = "--all" in rest or "-a" in rest
    positional = [a for a in rest if not a.startswith("-")]
    try:
        if verb == "start":
            lifecycle.start(root, positional[0])
        elif verb == "kill":
            sig = positional[1] if len(positional) > 1 else "SIGTERM"
            lifecycle.kill(root, positional[0], sig, all_processes=kill_all)
        elif verb == "delete":
            lifecycle.delete(root, positional[0], force=force)
        elif verb == "pause":
            lifecycle.pause(root, positional[0])
        else:
            lifecycle.resume(root, positional[0])
    except SkiffError as err:
        return subprocess.CompletedProcess(argv, 1, b"", str(err).encode() + b"\n")
    except OSError as err:
        text = err.strerror or str(err)
        if err.filename:
            text = f"{text}: {err.filename}"
        return subprocess.CompletedProcess(argv, 1, b"", text.encode() + b"\n")
    return subprocess.CompletedProcess(argv, 0, b"", b"")


def _check_image_ref(ref: str) -> None:
    """Docker's rule: anything that is not an image id (or a prefix of one) must parse as a
    reference, or the request is a 400 before the image is looked up."""
    from skiff.types.reference import parse_reference

    bare = ref.removeprefix("sha256:")
    if bare and len(bare) <= 64 and all(c in "0123456789abcdef" for c in bare):
        return
    parse_reference(ref)


def _parse_ts(text: str) -> float:
    from skiff.engine.logs import parse_time

    try:
        return parse_time(text)
    except ValueError:
        return 0.0
