"""cgroups v1 and v2 behind one interface (`CgroupManager`, see manager.py for the lifecycle).

`open_manager()` finds the hierarchies under a root and computes the container's cgroup in each;
`load_manager()` restores a manager from `CgroupManager.to_dict()`. Each controller is its own
module (memory, cpu, cpuset, pids, blkio, hugetlb, devices, net, rdma, unified, freezer); v1.py
and v2.py hold the two managers. Functions that touch the host take a root path so tests can
point them at a fake cgroupfs in a temp directory.
"""

from __future__ import annotations

import os

from skiff.errors import FailedPrecondition, InvalidArgument
from skiff.linux.cgroups.paths import (
    UNIFIED,
    Layout,
    detect,
    leaf_and_prunable,
    own_path,
    parse_proc_cgroup,
)
from skiff.linux.cgroups.v1 import V1Manager
from skiff.linux.cgroups.v2 import V2Manager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.linux.cgroups.manager import CgroupManager

__all__ = ["CgroupManager", "V1Manager", "V2Manager", "load_manager", "open_manager"]


def __getattr__(name: str) -> Any:
    # The Protocol needs `typing`; load it only for code that asks for it.
    if name == "CgroupManager":
        from skiff.linux.cgroups.manager import CgroupManager

        return CgroupManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_manager(
    cgroups_path: str | None,
    container_id: str,
    *,
    root: str = "/sys/fs/cgroup",
    proc_self_cgroup: str = "/proc/self/cgroup",
) -> CgroupManager:
    """The manager for one container's cgroup; nothing is created until `create()`."""
    layout, own = _discover(root, proc_self_cgroup)
    prune: list[str] = []
    if layout.mode == "v2":
        leaf, prune = leaf_and_prunable(layout.hierarchies[0], own, cgroups_path, container_id)
        return V2Manager(root, {UNIFIED: leaf}, prune)
    paths: dict[str, str] = {}
    for h in layout.hierarchies:
        leaf, extra = leaf_and_prunable(h, own, cgroups_path, container_id)
        prune.extend(extra)
        for c in h.controllers:
            paths[c] = leaf
    if layout.unified is not None:
        leaf, extra = leaf_and_prunable(layout.unified, own, cgroups_path, container_id)
        prune.extend(extra)
        paths[UNIFIED] = leaf
    return V1Manager(root, paths, prune)


def _discover(root: str, proc_self_cgroup: str) -> tuple[Layout, dict[str, str]]:
    layout = detect(root, proc_self_cgroup)
    try:
        with open(proc_self_cgroup) as f:
            own = parse_proc_cgroup(f.read())
    except OSError as e:
        raise FailedPrecondition(
            f"cgroup: read {proc_self_cgroup}: {os.strerror(e.errno or 0)}"
        ) from None
    return layout, own


def load_manager(saved: dict[str, Any]) -> CgroupManager:
    """The manager `CgroupManager.to_dict()` described."""
    try:
        version = saved["version"]
        root = saved["root"]
        paths = saved["paths"]
        prune = saved.get("prune", [])
        ok = (
            isinstance(root, str)
            and isinstance(paths, dict)
            and all(
                isinstance(k, str) and isinstance(v, str) and os.path.isabs(v)
                for k, v in paths.items()
            )
            and isinstance(prune, list)
            and all(isinstance(p, str) for p in prune)
        )
    except (KeyError, TypeError):
        ok = False
        version = None
    if not ok:
        raise InvalidArgument(f"cgroup state: not a saved cgroup manager: {saved!r}")
    if version == 1:
        return V1Manager(root, paths, prune)
    if version == 2:
        if UNIFIED not in paths:
            raise InvalidArgument(f"cgroup state: v2 manager without a unified path: {saved!r}")
        return V2Manager(root, paths, prune)
    raise InvalidArgument(f"cgroup state: unknown cgroup version {version!r}")


def prune_empty_subtree(
    subtree: str = "skiff",
    *,
    root: str = "/sys/fs/cgroup",
    proc_self_cgroup: str = "/proc/self/cgroup",
) -> None:
    """Remove `<own cgroup>/<subtree>` in every hierarchy where it is empty.

    Other runtimes (runc) nest a relative cgroupsPath under the caller's cgroup as skiff does,
    but leave the parent directories behind when they delete a container; skiffd calls this
    after such a delete. A directory still in use is not empty and stays.
    """
    try:
        layout = detect(root, proc_self_cgroup)
        with open(proc_self_cgroup) as f:
            own = parse_proc_cgroup(f.read())
    except (OSError, FailedPrecondition):
        return
    hierarchies = list(layout.hierarchies)
    if layout.unified is not None:
        hierarchies.append(layout.unified)
    for h in hierarchies:
        path = os.path.join(h.mount, own_path(h, own).lstrip("/"), subtree)
        try:
            os.rmdir(path)
        except OSError:
            pass
