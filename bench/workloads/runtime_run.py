"""`run` of /bin/true on one busybox bundle: skiff-runtime against runc, same config.json."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

from lib import procs
from lib.context import Context
from lib.engines import skiff_binary
from lib.stats import Goal, Row
from lib.timing import Side, fill

NAME = "runtime-run"
ALIASES = ("runtime",)
BUDGET = (45, 15)


def rows(quick: bool) -> list[Row]:
    return [
        Row(
            "runtime-run",
            "runtime `run` /bin/true",
            "s",
            "skiff-runtime",
            "runc",
            Goal("ratio", 1.0),
        )
    ]


def make_bundle(bundle: Path, rootfs: Path, args: list[str], cgroups_path: str) -> Path:
    """A bundle whose config.json is `runc spec`'s default with the given process args, the
    shared busybox rootfs (read-only) and a cgroup path relative to the runtime's own cgroup."""
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "config.json").unlink(missing_ok=True)
    procs.run(["runc", "spec", "--bundle", str(bundle)])
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = args
    config["process"]["terminal"] = False
    config["root"] = {"path": str(rootfs), "readonly": True}
    config["hostname"] = "bench"
    config["linux"]["cgroupsPath"] = cgroups_path
    (bundle / "config.json").write_text(json.dumps(config, indent=2))
    return bundle


def run(ctx: Context, rows: dict[str, Row], budget: float) -> None:
    base = ctx.tmp / "runtime"
    rootfs = ctx.busybox_rootfs()
    cg = f"{ctx.cgroup_prefix}-runtime"
    bundle = make_bundle(base / "true", rootfs, ["/bin/true"], cg)
    check = make_bundle(base / "exit7", rootfs, ["/bin/sh", "-c", "exit 7"], cg)
    counter = itertools.count()

    def side(name: str, binary: str) -> Side:
        state = base / f"state-{name}"
        state.mkdir(parents=True, exist_ok=True)

        def cmd(*args: str) -> list[str]:
            return [binary, "--root", str(state), *args]

        def measure() -> float:
            cid = f"bench-{ctx.run_id}-{next(counter)}"
            try:
                return procs.timed(cmd("run", "--bundle", str(bundle), cid), timeout=60)
            finally:
                subprocess.run(cmd("delete", "--force", cid), capture_output=True, timeout=30)

        def warmup() -> None:
            cid = f"bench-{ctx.run_id}-check-{next(counter)}"
            try:
                res = subprocess.run(
                    cmd("run", "--bundle", str(check), cid),
                    capture_output=True,
                    text=True,
                    timeout=60,
                    stdin=subprocess.DEVNULL,
                )
            finally:
                subprocess.run(cmd("delete", "--force", cid), capture_output=True, timeout=30)
            if res.returncode != 7:
                raise procs.CommandFailed(
                    f"{name} run: the container's `exit 7` came back as exit "
                    f"{res.returncode}: {procs.first_line(res.stderr or res.stdout)}"
                )
            measure()

        return Side(name, measure, warmup)

    out = ctx.alternate(
        [side("skiff-runtime", skiff_binary("skiff-runtime")), side("runc", "runc")],
        runs=ctx.runs * 4,  # ~30 ms each: more samples cost nothing and steady the median
        budget_s=budget,
    )
    fill(rows["runtime-run"], out, "skiff-runtime", "runc")
    rows["runtime-run"].notes.append(
        "wall time of `<runtime> --root S run --bundle B <unique id>`, `delete --force` between runs "
        "(untimed); same config.json (runc spec, args /bin/true, read-only busybox rootfs)"
    )
