"""The CgroupManager interface: one container's cgroup, across v1 hierarchies or in v2.

Lifecycle: `open_manager()` computes the paths (nothing is touched yet) → `create()` makes the
directories → `apply(resources)` writes limits (again later to update them) → `add_process(pid)`
→ … `freeze()`/`thaw()`, `stats()`, `pids()`, `kill_all(sig)` … → `destroy()`. `to_dict()` is
persisted in the runtime's state file and `load_manager()` brings the manager back in another
process.

`stats()` returns only the sections whose controller is present:
  cpu:     usage {total, per_cpu[], user, system} (ns), throttling {periods, throttled_periods,
           throttled_time (ns)}
  memory:  usage, max_usage, limit (None: unlimited), failcnt, oom_kill, under_oom, swap_usage,
           stats {memory.stat keys}
  pids:    current, limit (None: unlimited)
  blkio:   io_service_bytes_recursive[], io_serviced_recursive[] of {major, minor, op, value}
  hugetlb: {page size: {usage, max_usage, failcnt}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class CgroupManager(Protocol):
    version: int

    def create(self) -> None: ...

    def apply(self, resources: Mapping[str, Any]) -> None: ...

    def add_process(self, pid: int) -> None: ...

    def freeze(self) -> None: ...

    def thaw(self) -> None: ...

    def is_frozen(self) -> bool: ...

    def pids(self) -> list[int]: ...

    def stats(self) -> dict[str, Any]: ...

    def kill_all(self, sig: int) -> None: ...

    def destroy(self) -> None: ...

    def to_dict(self) -> dict[str, Any]: ...

    def paths(self) -> dict[str, str]: ...
