"""`docker run --rm busybox true` through the same docker CLI against skiffd and dockerd, and
`podman run --rm` (same busybox tar imported into each)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lib import procs
from lib.context import BUSYBOX_REF, Context
from lib.engines import Unavailable
from lib.stats import Goal, Row
from lib.timing import Side, fill

NAME = "run-rm"
ALIASES = ("run",)
BUDGET = (90, 25)

RUN_ARGS = ("run", "--rm", "--network", "none", BUSYBOX_REF)


def rows(quick: bool) -> list[Row]:
    return [
        Row("run-rm", "`run --rm busybox true`", "s", "skiffd", "dockerd", Goal("ratio", 0.33)),
        Row("run-rm-podman", "`run --rm busybox true`", "s", "skiffd", "podman", None),
    ]


def _side(
    name: str,
    runner: Callable[..., Any],
    timed: Callable[..., float],
    run_args: tuple[str, ...] = RUN_ARGS,
) -> Side:
    def warmup() -> None:
        out = runner(*run_args, "echo", "bench-ok", timeout=30).stdout
        if "bench-ok" not in out:
            raise procs.CommandFailed(f"{name}: `run --rm busybox echo bench-ok` printed {out!r}")
        timed(*run_args, "true")

    return Side(name, lambda: timed(*run_args, "true", timeout=30), warmup)


def run(ctx: Context, rows: dict[str, Row], budget: float) -> None:
    sides: list[Side] = []
    unavailable: dict[str, str] = {}
    for name, get in (("skiffd", ctx.skiffd), ("dockerd", ctx.dockerd)):
        try:
            daemon = get()
        except Unavailable as e:
            unavailable[name] = str(e)
            continue
        sides.append(_side(name, daemon.cli.run, daemon.cli.timed))
    try:
        pod = ctx.podman()
        podman_args = ("run", "--rm", "--network", "none", *pod.run_flags(), BUSYBOX_REF)
        sides.append(_side("podman", pod.run, pod.timed, podman_args))
    except Unavailable as e:
        unavailable["podman"] = str(e)
    out = ctx.alternate(sides, runs=ctx.runs * 2, budget_s=budget)
    fill(rows["run-rm"], out, "skiffd", "dockerd", unavailable=unavailable)
    fill(rows["run-rm-podman"], out, "skiffd", "podman", unavailable=unavailable)
    rows["run-rm"].notes.append(
        "the same docker CLI with -H on each daemon's socket; `--network none` on every engine "
        "(dockerd runs with --bridge=none --iptables=false)"
    )
    rows["run-rm-podman"].notes.append(
        "podman 4 with its own --root/--runroot, runc, cgroupfs, `--ulimit nofile=4096:4096 --ulimit nproc=4096:4096` (its default rlimits exceed this machine's hard limits)"
    )
