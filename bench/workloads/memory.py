# ruff: noqa: RUF001 (the report is typeset with multiplication signs and dashes)
"""Engine memory: the sum of RSS (and PSS) of all of an engine's processes with no containers,
and the growth per running container with 10 running.

dockerd's engine is dockerd + containerd + one containerd-shim-runc-v2 per container; skiffd's is
skiffd and whatever it spawns (its shims). Processes are found by ancestry and by naming the
engine's private temp dir (shims re-parent themselves to init); container processes (another pid
namespace) are not the engine and are not counted.
"""

from __future__ import annotations

import time
from functools import partial

from lib import procs
from lib.context import BUSYBOX_REF, Context
from lib.engines import Daemon, Unavailable
from lib.stats import Goal, Row
from lib.timing import Side, fill

NAME = "memory"
ALIASES = ("rss", "idle-rss", "memory-per-container")
BUDGET = (120, 35)
CONTAINERS = 10


def rows(quick: bool) -> list[Row]:
    n = CONTAINERS
    return [
        Row("idle-rss", "engine RSS, idle (0 containers)", "MiB", "skiffd", "dockerd",
            Goal("absolute", 60.0)),
        Row("idle-pss", "engine PSS, idle (0 containers)", "MiB", "skiffd", "dockerd", None),
        Row("ctr-rss", f"engine RSS per running container ({n} running)", "MiB", "skiffd",
            "dockerd", Goal("absolute", 2.0)),
        Row("ctr-pss", f"engine PSS per running container ({n} running)", "MiB", "skiffd",
            "dockerd", None),
    ]  # fmt: skip


def fmt_names(names: dict[str, int]) -> str:
    return ", ".join(f"{k}×{v}" for k, v in sorted(names.items())) or "none found"


def run(ctx: Context, rows: dict[str, Row], budget: float) -> None:
    settle = 1.0 if ctx.quick else 2.0
    daemons: dict[str, Daemon] = {}
    unavailable: dict[str, str] = {}
    for name, get in (("skiffd", ctx.skiffd), ("dockerd", ctx.dockerd)):
        try:
            daemons[name] = get()
        except Unavailable as e:
            unavailable[name] = str(e)
    seen: dict[str, tuple[dict[str, int], dict[str, int]]] = {}

    def measure(d: Daemon) -> dict[str, float]:
        d.cli.rm_all()
        time.sleep(settle)
        idle = d.memory()
        for _ in range(CONTAINERS):
            d.cli.run("run", "-d", "--network", "none", BUSYBOX_REF, "sleep", "600", timeout=30)
        time.sleep(settle)
        loaded = d.memory()
        up = len(d.cli.run("ps", "-q").stdout.split())
        d.cli.rm_all()
        if up != CONTAINERS:
            raise procs.CommandFailed(f"{d.name}: {up} of {CONTAINERS} containers running")
        if idle.rss_mib <= 0:
            raise procs.CommandFailed(f"{d.name}: no engine process found to measure")
        seen[d.name] = (idle.processes, loaded.processes)
        return {
            "idle_rss": idle.rss_mib,
            "idle_pss": idle.pss_mib,
            "ctr_rss": (loaded.rss_mib - idle.rss_mib) / CONTAINERS,
            "ctr_pss": (loaded.pss_mib - idle.pss_mib) / CONTAINERS,
        }

    def warm(d: Daemon) -> None:
        d.cli.run("run", "-d", "--network", "none", BUSYBOX_REF, "sleep", "600", timeout=30)
        d.cli.rm_all()

    sides = [Side(n, partial(measure, d), partial(warm, d)) for n, d in daemons.items()]
    out = ctx.alternate(sides, runs=ctx.runs, budget_s=budget)
    for row_id, metric in (
        ("idle-rss", "idle_rss"),
        ("idle-pss", "idle_pss"),
        ("ctr-rss", "ctr_rss"),
        ("ctr-pss", "ctr_pss"),
    ):
        fill(rows[row_id], out, "skiffd", "dockerd", metric=metric, unavailable=unavailable)
    for name, (idle_names, loaded_names) in seen.items():
        rows["idle-rss"].notes.append(
            f"{name} processes counted: idle {fmt_names(idle_names)}; with {CONTAINERS} running "
            f"{fmt_names(loaded_names)}"
        )
    rows["ctr-rss"].notes.append(
        f"(sum with {CONTAINERS} running − sum idle) / {CONTAINERS}, {settle:g} s after the last "
        "start; RSS double-counts shared pages, PSS shares them out"
    )
