"""What every workload gets: the temp dir, the run's settings, the busybox image tar, and the
engines, each started once on first use (or the reason it could not start, remembered)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import procs
from .engines import (
    BridgedDockerd,
    BridgedSkiffd,
    Daemon,
    Dockerd,
    Podman,
    Skiffd,
    Unavailable,
)
from .timing import Outcome, Side, alternate

BUSYBOX_REF = "busybox:latest"


@dataclass
class Settings:
    runs: int
    quick: bool
    deadline: float  # time.monotonic() by which the whole run must be done


@dataclass
class Context:
    tmp: Path
    settings: Settings
    repo: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)
    _services: dict[str, object] = field(default_factory=dict)
    _stop_order: list[object] = field(default_factory=list)
    _busybox: Path | None = None
    _rootfs: Path | None = None

    @property
    def cgroup_prefix(self) -> str:
        """Every cgroup the bench causes to exist starts with this (removed at the end)."""
        return f"skiff-bench-{self.run_id}"

    @property
    def runs(self) -> int:
        return self.settings.runs

    @property
    def quick(self) -> bool:
        return self.settings.quick

    def alternate(self, sides: list[Side], runs: int, budget_s: float) -> Outcome:
        """timing.alternate with this run's log and overall deadline."""
        return alternate(
            sides, runs=runs, budget_s=budget_s, log=self.log, deadline=self.settings.deadline
        )

    def time_left(self) -> float:
        return self.settings.deadline - time.monotonic()

    def busybox_rootfs(self) -> Path:
        if self._rootfs is None:
            from skiff.images.bootstrap import build_busybox_rootfs

            self._rootfs = build_busybox_rootfs(self.tmp / "busybox" / "rootfs")
        return self._rootfs

    def busybox_tar(self) -> Path:
        """A tar of the busybox rootfs: `docker import`/`podman import` it into every engine."""
        if self._busybox is None:
            rootfs = self.busybox_rootfs()
            tar = self.tmp / "busybox" / "busybox.tar"
            procs.run(
                ["tar", "-C", str(rootfs), "--numeric-owner", "--sort=name", "-cf", str(tar), "."]
            )
            self._busybox = tar
        return self._busybox

    def _daemon(self, key: str, factory: Callable[[], Daemon]) -> Daemon:
        cached = self._services.get(key)
        if isinstance(cached, Unavailable):
            raise cached
        if isinstance(cached, Daemon):
            problem = cached.health()
            if problem is None:
                return cached
            self.log(f"  {problem}")
            gone = Unavailable(problem)
            self._services[key] = gone
            raise gone
        daemon = factory()
        self._stop_order.append(daemon)
        self.log(f"  starting {daemon.name} ({daemon.root})")
        try:
            daemon.start(timeout=60)
            daemon.cli.run("import", str(self.busybox_tar()), BUSYBOX_REF, timeout=180)
        except (Unavailable, procs.CommandFailed) as e:
            reason = (
                e
                if isinstance(e, Unavailable)
                else Unavailable(f"{daemon.name}: importing the busybox image failed: {e}")
            )
            self._services[key] = reason
            self.log(f"  {reason}")
            raise reason
        self._services[key] = daemon
        return daemon

    def dockerd(self) -> Daemon:
        return self._daemon(
            "dockerd", lambda: Dockerd(self.tmp / "dockerd", f"{self.cgroup_prefix}-dockerd")
        )

    def skiffd(self) -> Daemon:
        # /run/sk<4 hex>: as short as skiffd's default /run/skiff (see Skiffd).
        exec_root = Path(f"/run/sk{self.run_id[:4]}")
        return self._daemon(
            "skiffd",
            lambda: Skiffd(self.tmp / "skiffd", f"{self.cgroup_prefix}-skiffd", [exec_root]),
        )

    @property
    def bridge_names(self) -> tuple[str, str]:
        """(skiffd's, dockerd's) bridge names for the `network` workload: unique per run and
        unlike skiff's veth names (sk + 11 hex)."""
        return f"sk{self.run_id[:6]}", f"skbd{self.run_id[:6]}"

    def skiffd_bridged(self) -> Daemon:
        """A second skiffd whose default `bridge` network is a bridge of its own."""
        exec_root = Path(f"/run/skn{self.run_id[:4]}")
        return self._daemon(
            "skiffd-bridged",
            lambda: BridgedSkiffd(
                self.tmp / "skiffd-bridged",
                f"{self.cgroup_prefix}-skiffd-bridged",
                self.bridge_names[0],
                [exec_root],
            ),
        )

    def dockerd_bridged(self) -> Daemon:
        """A second dockerd with `--bridge <own bridge> --iptables=true` on a free /24."""
        from .netfilter import pick_subnet, used_networks

        return self._daemon(
            "dockerd-bridged",
            lambda: BridgedDockerd(
                self.tmp / "dockerd-bridged",
                f"{self.cgroup_prefix}-dockerd-bridged",
                self.bridge_names[1],
                pick_subnet(used_networks()),
            ),
        )

    def release(self, key: str) -> list[str]:
        """Stop a daemon before the run ends (one that changes the host's networking should
        not outlive its workload); returns the clean-up problems."""
        service = self._services.pop(key, None)
        if not isinstance(service, Daemon):
            return []
        self.untrack(service)
        return service.stop()

    def podman(self) -> Podman:
        cached = self._services.get("podman")
        if isinstance(cached, Unavailable):
            raise cached
        if isinstance(cached, Podman):
            return cached
        pod = Podman(self.tmp / "podman", f"{self.cgroup_prefix}-podman")
        self._stop_order.append(pod)
        try:
            pod.run("import", str(self.busybox_tar()), BUSYBOX_REF, timeout=180)
        except procs.CommandFailed as e:
            err = Unavailable(f"podman: importing the busybox image failed: {e}")
            self._services["podman"] = err
            raise err
        self._services["podman"] = pod
        return pod

    def track(self, service: object) -> None:
        """Stop this service (anything with stop()) at clean-up, after its users."""
        self._stop_order.append(service)

    def untrack(self, service: object) -> None:
        if service in self._stop_order:
            self._stop_order.remove(service)

    def cleanup(self) -> list[str]:
        """Stop every service (last started first), remove cgroups and the temp dir."""
        problems: list[str] = []
        for service in reversed(self._stop_order):
            stop = getattr(service, "stop", None)
            if stop is None:
                continue
            try:
                problems += stop()
            except Exception as e:
                problems.append(f"{getattr(service, 'name', service)}: stop: {e}")
        self._stop_order.clear()
        procs.kill_marked(str(self.tmp))
        time.sleep(0.3)
        left = procs.remove_cgroups(self.cgroup_prefix)
        if left:
            time.sleep(1)
            left = procs.remove_cgroups(self.cgroup_prefix)
        if left:
            problems.append(f"cgroups left: {left}")
        try:
            procs.remove_tree(self.tmp)
        except OSError as e:
            problems.append(str(e))
        return problems


def which_or_reason(binary: str) -> str | None:
    """None when `binary` is on PATH, else a reason for the table."""
    return None if shutil.which(binary) else f"{binary} is not installed"


def runtime_works(binary: str) -> str | None:
    """None when `<binary> --version` succeeds, else the first line of what it said."""
    try:
        res = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    except OSError as e:
        return f"{binary}: {e.strerror or e}"
    if res.returncode != 0:
        return f"{binary} --version: exit {res.returncode}: {procs.first_line(res.stderr or res.stdout)}"
    return None
