"""cgroup v1 (and hybrid): one directory per hierarchy, controllers keyed by name.

In hybrid mode the cgroup2 hierarchy mounted beside the v1 ones (root/unified) is kept as the
"unified" path: the container joins it too (as runc does for systemd) and `unified` resources
are written there.
"""

from __future__ import annotations

import os

from skiff.errors import FailedPrecondition
from skiff.linux.cgroups import cpuset
from skiff.linux.cgroups.base import BaseManager, plan
from skiff.linux.cgroups.fs import execute, make_dirs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


class V1Manager(BaseManager):
    version = 1

    def create(self) -> None:
        created: list[str] = []
        for d in self._dirs():
            created.extend(make_dirs(d, "/"))
        cpuset_dir = self._paths.get("cpuset")
        if cpuset_dir is not None:
            # Only levels skiff owns are filled in: the ones just made, the skiff subtree, the leaf.
            ours = set(created) | set(self._prune) | {cpuset_dir}
            for d in cpuset.empty_levels(cpuset_dir, ours):
                cpuset.inherit_from_parent(d)

    def apply(self, resources: Mapping[str, Any]) -> None:
        steps = plan(resources, 1)
        execute(steps, self._paths.get, self.root)

    def _freezer(self) -> str:
        d = self._paths.get("freezer")
        if d is None:
            raise FailedPrecondition(
                f"cgroup: the freezer controller is not mounted under {self.root}"
            )
        return d

    def _can_freeze(self) -> bool:
        d = self._paths.get("freezer")
        return d is not None and os.path.exists(os.path.join(d, "freezer.state"))

    def freeze(self) -> None:
        from skiff.linux.cgroups import freezer

        freezer.freeze_v1(self._freezer())

    def thaw(self) -> None:
        from skiff.linux.cgroups import freezer

        freezer.thaw_v1(self._freezer())

    def is_frozen(self) -> bool:
        from skiff.linux.cgroups import freezer

        return freezer.state_v1(self._freezer()) == "FROZEN"

    def stats(self) -> dict[str, Any]:
        from skiff.linux.cgroups import blkio, cpu, hugetlb, memory, pids

        out: dict[str, Any] = {}
        cpu_stats = cpu.stats_v1(self._paths.get("cpu"), self._paths.get("cpuacct"))
        if cpu_stats is not None:
            out["cpu"] = cpu_stats
        if "memory" in self._paths:
            mem = memory.stats(self._paths["memory"], 1)
            if mem is not None:
                out["memory"] = mem
        if "pids" in self._paths:
            p = pids.stats(self._paths["pids"], 1)
            if p is not None:
                out["pids"] = p
        if "blkio" in self._paths:
            out["blkio"] = blkio.stats_v1(self._paths["blkio"])
        if "hugetlb" in self._paths:
            h = hugetlb.stats(self._paths["hugetlb"], 1)
            if h is not None:
                out["hugetlb"] = h
        return out
