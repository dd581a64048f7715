# ruff: noqa: RUF001 (the report is typeset with multiplication signs and dashes)
"""50 sequential `docker run -d busybox sleep 600` (total time), then `docker ps` with those 50
running: skiffd against dockerd through the same docker CLI."""

from __future__ import annotations

import time
from functools import partial

from lib import procs
from lib.context import BUSYBOX_REF, Context
from lib.engines import Daemon, Unavailable
from lib.machine import wait_quiet
from lib.stats import Goal, Row
from lib.timing import Side, fill

NAME = "detached"
ALIASES = ("ps", "detached-runs", "ps-running")
BUDGET = (270, 60)


def count(quick: bool) -> int:
    return 10 if quick else 50


def rows(quick: bool) -> list[Row]:
    n = count(quick)
    return [
        Row(
            "detached",
            f"{n} × `run -d busybox sleep 600` (total)",
            "s",
            "skiffd",
            "dockerd",
            Goal("ratio", 0.33),
        ),
        Row("ps", f"`docker ps` with {n} running", "s", "skiffd", "dockerd", Goal("ratio", 1.0)),
    ]


def running(daemon: Daemon) -> int:
    return len(daemon.cli.run("ps", "-q", timeout=60).stdout.split())


def start_batch(daemon: Daemon, n: int, others: tuple[Daemon, ...] = ()) -> float:
    """Remove every container of this daemon and of the others compared with it (untimed),
    then time n sequential detached runs; checks that all n are running afterwards.

    Each batch starts on a quiet machine: no container of either engine left running (50 idle
    containerd-shims, Go processes whose runtimes keep waking up, measurably slow whatever runs
    beside them) and the CPUs let go quiet after the removals' clean-up."""
    for d in (*others, daemon):
        d.cli.rm_all()
    wait_quiet()
    start = time.perf_counter()
    for _ in range(n):
        daemon.cli.run("run", "-d", "--network", "none", BUSYBOX_REF, "sleep", "600", timeout=30)
    elapsed = time.perf_counter() - start
    up = running(daemon)
    if up != n:
        raise procs.CommandFailed(f"{daemon.name}: {up} of {n} detached containers are running")
    return elapsed


def run(ctx: Context, rows: dict[str, Row], budget: float) -> None:
    n = count(ctx.quick)
    daemons: dict[str, Daemon] = {}
    unavailable: dict[str, str] = {}
    for name, get in (("skiffd", ctx.skiffd), ("dockerd", ctx.dockerd)):
        try:
            daemons[name] = get()
        except Unavailable as e:
            unavailable[name] = str(e)

    def warm(d: Daemon) -> None:
        start_batch(d, 1)
        d.cli.rm_all()

    def others(name: str) -> tuple[Daemon, ...]:
        return tuple(d for other, d in daemons.items() if other != name)

    batches = [
        Side(name, partial(start_batch, d, n, others(name)), partial(warm, d))
        for name, d in daemons.items()
    ]
    started = time.monotonic()
    out = ctx.alternate(batches, runs=ctx.runs, budget_s=budget * 0.85)
    fill(rows["detached"], out, "skiffd", "dockerd", unavailable=unavailable)
    rows["detached"].notes.append(
        f"{n} sequential `docker run -d --network none` on each daemon; before each batch "
        "(untimed) every container of both daemons is removed and the CPUs let go quiet (< 10 % "
        "busy over 0.2 s, at most 3 s); checked that all are running"
    )

    # `docker ps` with n running on each daemon at once (the batches above removed the other
    # daemon's): start them again, untimed.
    ps_unavailable = dict(unavailable)
    listers = []
    for name, d in daemons.items():
        if name in out.errors:
            ps_unavailable[name] = f"could not start {n} containers: {out.errors[name]}"
            continue
        if running(d) != n:
            try:
                start_batch(d, n)
            except procs.CommandFailed as e:
                ps_unavailable[name] = f"could not start {n} containers: {e}"
                continue
        listers.append(Side(name, partial(d.cli.timed, "ps", timeout=60)))
    left = max(10.0, budget - (time.monotonic() - started))
    try:
        ps_out = ctx.alternate(listers, runs=ctx.runs * 2, budget_s=left)
        for side in listers:
            d = daemons[side.name]
            if side.name not in ps_out.errors and running(d) != n:
                ps_out.errors[side.name] = f"{running(d)} of {n} containers running during ps"
        fill(rows["ps"], ps_out, "skiffd", "dockerd", unavailable=ps_unavailable)
    finally:
        for name, d in daemons.items():
            try:
                d.cli.rm_all()
            except procs.CommandFailed as e:
                ctx.log(f"    {name}: removing containers: {e}")
