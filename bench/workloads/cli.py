"""CLI start-up: `skiff ps` against `docker ps` on the same daemon (skiffd; dockerd when skiffd
is not up), and `skiff run --rm busybox true` against `docker run --rm` there."""

from __future__ import annotations

from lib import procs
from lib.context import BUSYBOX_REF, Context
from lib.engines import Daemon, Unavailable, skiff_binary
from lib.stats import Goal, Row
from lib.timing import Side, fill

NAME = "cli"
ALIASES = ("skiff-ps", "cli-startup")
BUDGET = (45, 15)


def rows(quick: bool) -> list[Row]:
    return [
        Row("cli-ps", "CLI start-up: `ps`", "s", "skiff ps", "docker ps", Goal("ratio", 3.0)),
        Row("cli-run", "CLI: `run --rm busybox true`", "s", "skiff run", "docker run", None),
    ]


def run(ctx: Context, rows: dict[str, Row], budget: float) -> None:
    daemon: Daemon | None = None
    reasons = []
    for get in (ctx.skiffd, ctx.dockerd):
        try:
            daemon = get()
            break
        except Unavailable as e:
            reasons.append(str(e))
    if daemon is None:
        for row in rows.values():
            row.skiff_error = row.anchor_error = "; ".join(reasons)
        return
    for row in rows.values():
        row.notes.append(
            f"both CLIs against {daemon.name}" + (f" ({reasons[0]})" if reasons else "")
        )
    skiff = skiff_binary("skiff")
    env = daemon.cli.env

    def skiff_cmd(*args: str) -> list[str]:
        return [skiff, "-H", daemon.cli.host, *args]

    run_args = ("run", "--rm", "--network", "none", BUSYBOX_REF, "true")

    def skiff_ps_warmup() -> None:
        out = procs.run(skiff_cmd("ps"), env=env, timeout=60).stdout
        lines = out.splitlines()
        if not lines or "CONTAINER ID" not in lines[0]:
            raise procs.CommandFailed(f"skiff ps: no docker-style table header in {out[:80]!r}")

    ps = ctx.alternate(
        [
            Side(
                "skiff",
                lambda: procs.timed(skiff_cmd("ps"), env=env, timeout=60),
                skiff_ps_warmup,
            ),
            Side("docker", lambda: daemon.cli.timed("ps", timeout=60)),
        ],
        runs=ctx.runs * 4,
        budget_s=budget / 2,
    )
    fill(rows["cli-ps"], ps, "skiff", "docker")
    runs = ctx.alternate(
        [
            Side("skiff", lambda: procs.timed(skiff_cmd(*run_args), env=env, timeout=30)),
            Side("docker", lambda: daemon.cli.timed(*run_args, timeout=30)),
        ],
        runs=ctx.runs,
        budget_s=budget / 2,
    )
    fill(rows["cli-run"], runs, "skiff", "docker")
