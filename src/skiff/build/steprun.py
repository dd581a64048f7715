"""One RUN step: a container on the step's mounted rootfs, run to completion by the OCI runtime.

The config.json comes from the engine's spec builder (Docker's default capabilities, masked
paths, /dev, /proc, /sys) with the daemon's seccomp profile and no-new-privileges default, as a
container of `docker run` gets them; the step gets a private network namespace with only `lo` up (or the
host's, for `--network=host`). Output goes to the build stream as it comes. When the build is
cancelled the container is killed and deleted before this returns.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff.engine import oci
from skiff.engine.security import SecurityDefaults, seccomp_for
from skiff.errors import FailedPrecondition, InvalidArgument
from skiff.linux import netns

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
STDERR_START, STDERR_END = "\x1b[91m", "\x1b[0m"

_libc = ctypes.CDLL(None, use_errno=True)

# The daemon's defaults (skiffd sets them at start); run_step(security=...) overrides them.
security_defaults = SecurityDefaults()


class Cancelled(FailedPrecondition):
    """The client went away: the build stopped."""


def _loopback_up(path: str) -> None:
    failure: list[BaseException] = []

    def work() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {path}: {os.strerror(err)}")
            finally:
                os.close(fd)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                req = struct.pack("16sh14x", b"lo", 0)
                flags = struct.unpack("16sh14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
                fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh14x", b"lo", flags | IFF_UP))
        except BaseException as exc:
            failure.append(exc)

    t = threading.Thread(target=work, name="build-netns-lo")
    t.start()
    t.join()
    if failure:
        raise FailedPrecondition(f"build step network: bring up lo: {failure[0]}")


@dataclass
class StepSpec:
    container_id: str
    rootfs: str
    args: list[str]
    env: list[str]
    user: str
    cwd: str
    network: str = "default"  # default | none | host
    mounts: list[dict[str, Any]] = field(default_factory=list)  # extra OCI mounts


def network_mode(value: str) -> str:
    v = (value or "default").lower()
    if v in ("default", "bridge", "none", ""):
        return "none" if v == "none" else "default"
    if v == "host":
        return "host"
    raise InvalidArgument(
        f"network mode {value!r} is not supported for build steps (default, none or host)"
    )


def run_step(
    step: StepSpec,
    *,
    runtime: str,
    runtime_root: str,
    work_dir: Path,
    output: Callable[[str], None],
    cancelled: Callable[[], bool],
    security: SecurityDefaults | None = None,
) -> int:
    """Run the step's process; returns its exit code. Raises Cancelled when cancelled."""
    defaults = security if security is not None else security_defaults
    bundle = work_dir / step.container_id
    bundle.mkdir(parents=True)
    netns_path = None
    try:
        mode = network_mode(step.network)
        if mode != "host":
            netns_path = netns.create(str(bundle / "netns"))
            _loopback_up(netns_path)
        hc: dict[str, Any] = {"NetworkMode": "host" if mode == "host" else "none"}
        config = {
            "Env": step.env,
            "Cmd": step.args,
            "User": step.user,
            "WorkingDir": step.cwd or "/",
            "Hostname": step.container_id[:12],
        }
        opts = oci.security_options(hc, default_no_new_privileges=defaults.no_new_privileges)
        files = bundle / "etc"
        oci.etc_files(
            container_id=step.container_id, config=config, host_config=hc, files_dir=str(files)
        )
        spec = oci.build_spec(
            container_id=step.container_id,
            rootfs=step.rootfs,
            config=config,
            host_config=hc,
            files_dir=str(files),
            netns_path=netns_path,
            pidns_path=None,
            ipcns_path=None,
            init_binary=None,
            seccomp=seccomp_for(opts, oci.capabilities(hc), defaults),
            security=opts,
        )
        spec["mounts"] += step.mounts
        spec["linux"]["cgroupsPath"] = f"skiff/build-{step.container_id}"
        (bundle / "config.json").write_text(json.dumps(spec))
        return _run(step.container_id, bundle, runtime, runtime_root, output, cancelled)
    finally:
        if netns_path:
            with contextlib.suppress(OSError):
                netns.remove(netns_path)
        import shutil

        shutil.rmtree(bundle, ignore_errors=True)


def _run(
    cid: str,
    bundle: Path,
    runtime: str,
    runtime_root: str,
    output: Callable[[str], None],
    cancelled: Callable[[], bool],
) -> int:
    argv = [runtime, "--root", runtime_root, "run", "--bundle", str(bundle), cid]
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise FailedPrecondition(f"build step: start runtime {runtime}: {exc}") from None
    assert proc.stdout is not None and proc.stderr is not None
    lock = threading.Lock()

    def pump(fd: int, wrap: tuple[str, str]) -> None:
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            with lock:
                output(wrap[0] + data.decode("utf-8", errors="replace") + wrap[1])

    # Docker's legacy builder shows a step's stderr in red
    readers = [
        threading.Thread(target=pump, args=(proc.stdout.fileno(), ("", "")), daemon=True),
        threading.Thread(
            target=pump, args=(proc.stderr.fileno(), (STDERR_START, STDERR_END)), daemon=True
        ),
    ]
    for r in readers:
        r.start()

    killed = False
    cancel_at = last_kill = 0.0
    try:
        while proc.poll() is None:
            now = time.monotonic()
            if cancelled():
                if not killed:
                    killed, cancel_at = True, now
                # again and again: the container may still be being created at the first try
                if now - last_kill >= 0.2:
                    last_kill = now
                    subprocess.run(
                        [runtime, "--root", runtime_root, "kill", cid, "KILL"],
                        capture_output=True,
                        timeout=30,
                    )
                if now - cancel_at > 10:
                    proc.kill()
            try:
                proc.wait(0.1)
            except subprocess.TimeoutExpired:
                pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(
            [runtime, "--root", runtime_root, "delete", "--force", cid],
            capture_output=True,
            timeout=30,
        )
        if os.path.basename(runtime) != "skiff-runtime":
            from skiff.linux.cgroups import prune_empty_subtree

            prune_empty_subtree()  # runc leaves the `skiff` parent of the step's cgroup
        for r in readers:
            r.join(5)
        proc.stdout.close()
        proc.stderr.close()
    if killed:
        raise Cancelled("build cancelled: the client went away")
    return proc.returncode
