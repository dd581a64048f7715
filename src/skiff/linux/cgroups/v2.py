"""cgroup v2: one directory in the unified hierarchy.

`create()` enables, in each level between our own cgroup (or, for an absolute cgroupsPath, the
level above the first one it made) and the leaf, every controller the level offers; where the kernel refuses (the "no internal processes" rule: a
non-root cgroup with member processes cannot delegate domain controllers) the controller simply
stays unavailable and `apply()` reports it by name if a value needs it.
"""

from __future__ import annotations

import os

from skiff.linux.cgroups import devices
from skiff.linux.cgroups.base import SIGKILL, BaseManager, plan
from skiff.linux.cgroups.fs import (
    execute,
    log_debug,
    make_dirs,
    map_os_error,
    read_text,
    write_file,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


def enable_controllers(directory: str) -> None:
    """Best effort: write +<controller> to cgroup.subtree_control for each one missing."""
    available = (read_text(os.path.join(directory, "cgroup.controllers")) or "").split()
    enabled = set((read_text(os.path.join(directory, "cgroup.subtree_control")) or "").split())
    for c in available:
        if c in enabled:
            continue
        try:
            write_file(os.path.join(directory, "cgroup.subtree_control"), f"+{c}")
        except OSError as e:
            log_debug(f"cgroup: cannot enable {c} in {directory}: {os.strerror(e.errno or 0)}")


class V2Manager(BaseManager):
    version = 2

    @property
    def leaf(self) -> str:
        return self._paths["unified"]

    def create(self) -> None:
        created = make_dirs(self.leaf, "/")
        if self._prune:
            # Nested: from our own cgroup (the skiff subtree's parent) down to the leaf's parent.
            ours = sorted(self._prune, key=len)
            levels = [os.path.dirname(ours[0]), *ours]
        else:
            top = created[0] if created else self.leaf
            levels = [os.path.dirname(top), *created[:-1]]
        for d in levels:
            enable_controllers(d)

    def apply(self, resources: Mapping[str, Any]) -> None:
        steps = plan(resources, 2)
        leaf = self.leaf
        execute(steps, lambda _controller: leaf, self.root)
        rules = devices.rules(resources)
        if rules:
            from skiff.linux.cgroups import devices_bpf

            devices_bpf.attach(leaf, rules, devices.FIELD)

    def _can_freeze(self) -> bool:
        return os.path.exists(os.path.join(self.leaf, "cgroup.freeze"))

    def freeze(self) -> None:
        from skiff.linux.cgroups import freezer

        freezer.freeze_v2(self.leaf)

    def thaw(self) -> None:
        from skiff.linux.cgroups import freezer

        freezer.thaw_v2(self.leaf)

    def is_frozen(self) -> bool:
        from skiff.linux.cgroups import freezer

        return freezer.frozen_v2(self.leaf)

    def kill_all(self, sig: int) -> None:
        path = os.path.join(self.leaf, "cgroup.kill")
        if sig == SIGKILL and os.path.exists(path):
            try:
                write_file(path, "1")
                return
            except OSError as e:
                raise map_os_error(e, f"cgroup: kill {self.leaf}") from None
        super().kill_all(sig)

    def stats(self) -> dict[str, Any]:
        from skiff.linux.cgroups import blkio, cpu, hugetlb, memory, pids

        out: dict[str, Any] = {}
        d = self.leaf
        cpu_stats = cpu.stats_v2(d)
        if cpu_stats is not None:
            out["cpu"] = cpu_stats
        mem = memory.stats(d, 2)
        if mem is not None:
            out["memory"] = mem
        p = pids.stats(d, 2)
        if p is not None:
            out["pids"] = p
        if os.path.exists(os.path.join(d, "io.stat")):
            out["blkio"] = blkio.stats_v2(d)
        h = hugetlb.stats(d, 2)
        if h is not None:
            out["hugetlb"] = h
        return out
