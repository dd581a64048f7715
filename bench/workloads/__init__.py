"""The workloads, in the order they run. Each module has NAME, ALIASES (row ids or other names
`--only` accepts), BUDGET = (seconds full, seconds quick), rows(quick) -> list[Row] (the table
lines it fills, with their goals) and run(ctx, rows, budget) which fills them."""

from __future__ import annotations

from types import ModuleType

from . import build, cli, detached, memory, network, registry, run_rm, runtime_run, unpack

WORKLOADS: list[ModuleType] = [
    runtime_run,
    run_rm,
    network,
    detached,
    memory,
    registry,
    unpack,
    build,
    cli,
]


def select(only: list[str] | None) -> list[ModuleType]:
    """The workloads named (by NAME or alias) in `only`, in run order; all when None.
    Raises KeyError naming an unknown workload."""
    if not only:
        return list(WORKLOADS)
    chosen = set()
    for name in only:
        for mod in WORKLOADS:
            if name == mod.NAME or name in mod.ALIASES:
                chosen.add(mod.NAME)
                break
        else:
            known = ", ".join(m.NAME for m in WORKLOADS)
            raise KeyError(f"unknown workload {name!r} (known: {known})")
    return [m for m in WORKLOADS if m.NAME in chosen]
