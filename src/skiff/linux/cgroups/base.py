"""What V1Manager and V2Manager share: directories, membership, killing, teardown."""

from __future__ import annotations

import os

from skiff.errors import FailedPrecondition
from skiff.linux.cgroups.fs import (
    Step,
    map_os_error,
    prune_empty,
    read_procs,
    remove_tree,
    walk_top_down,
    write_file,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

SIGKILL = 9  # the signal module costs an enum import


# Each controller module, in the order its writes go, and the linux.resources key it reads.
PLANNERS = (
    ("cpuset", "cpu"),
    ("cpu", "cpu"),
    ("memory", "memory"),
    ("pids", "pids"),
    ("blkio", "blockIO"),
    ("hugetlb", "hugepageLimits"),
    ("net", "network"),
    ("rdma", "rdma"),
    ("devices", "devices"),
    ("unified", "unified"),
)


def controller(name: str) -> Any:
    """A controller's module (skiff.linux.cgroups.<name>), imported when first needed: every
    container start imports this package, and most set only a few resources."""
    return __import__(f"skiff.linux.cgroups.{name}", fromlist=("plan",))


def plan(resources: Mapping[str, Any], version: int) -> list[Step]:
    """Every controller's writes for `resources`, validated before anything is written. A
    controller whose key is absent (or null) has nothing to write and is not even imported."""
    steps: list[Step] = []
    for name, key in PLANNERS:
        if resources.get(key) is not None:
            steps.extend(controller(name).plan(resources, version))
    return steps


class BaseManager:
    version = 0

    def __init__(self, root: str, paths: dict[str, str], prune: list[str]) -> None:
        self.root = root
        self._paths = dict(paths)
        self._prune = list(prune)

    # -- interface shared by both versions --

    def paths(self) -> dict[str, str]:
        return dict(self._paths)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "root": self.root,
            "paths": dict(self._paths),
            "prune": list(self._prune),
        }

    def _dirs(self) -> list[str]:
        """Each leaf directory once (controllers of one v1 hierarchy share it)."""
        return list(dict.fromkeys(self._paths.values()))

    def add_process(self, pid: int) -> None:
        for d in self._dirs():
            path = os.path.join(d, "cgroup.procs")
            try:
                write_file(path, str(pid))
            except FileNotFoundError:
                raise FailedPrecondition(
                    f"cgroup: add process {pid}: {d} does not exist (create() first)"
                ) from None
            except OSError as e:
                raise map_os_error(e, f"cgroup: add process {pid} to {path}") from None

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self._dirs():
            for sub in walk_top_down(d):
                found.update(read_procs(sub))
        return sorted(found)

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def is_frozen(self) -> bool:
        raise NotImplementedError

    def _can_freeze(self) -> bool:
        raise NotImplementedError

    def kill_all(self, sig: int) -> None:
        """Signal every process in the subtree; frozen meanwhile so none can fork away."""
        can_freeze = self._can_freeze()
        was_frozen = can_freeze and self.is_frozen()
        if can_freeze and not was_frozen:
            self.freeze()
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if can_freeze and (not was_frozen or sig == SIGKILL):
                self.thaw()

    def destroy(self) -> None:
        for d in self._dirs():
            remove_tree(d)
        prune_empty(self._prune)
