"""Cold and fully cached builds of a two-stage Dockerfile that copies a few hundred files and
runs a few shell steps: `DOCKER_BUILDKIT=0 docker build` against skiffd and dockerd's legacy
builder, through the same docker CLI."""

from __future__ import annotations

import hashlib
import time
from functools import partial
from pathlib import Path

from lib import procs
from lib.context import Context
from lib.engines import Daemon, Unavailable
from lib.stats import Goal, Row
from lib.timing import Side, fill

NAME = "build"
ALIASES = ("build-cold", "build-cached")
BUDGET = (150, 50)

DOCKERFILE = """\
FROM busybox AS build
COPY files/ /src/
RUN find /src -type f | wc -l > /count
RUN mkdir -p /out && cd /src && find . -type f | sort | xargs md5sum > /out/sums
RUN tar -cf /out/src.tar -C /src . && cp /count /out/count

FROM busybox
COPY --from=build /out/ /app/
RUN test "$(wc -l < /app/sums)" -eq "$(cat /app/count)"
WORKDIR /app
CMD ["cat", "/app/count"]
"""


def file_count(quick: bool) -> int:
    return 120 if quick else 400


def rows(quick: bool) -> list[Row]:
    n = file_count(quick)
    return [
        Row("build-cold", f"cold `docker build` (2 stages, {n} files)", "s", "skiffd",
            "dockerd (legacy builder)", Goal("ratio", 1.0)),
        Row("build-cached", f"cached `docker build` (2 stages, {n} files)", "s", "skiffd",
            "dockerd (legacy builder)", Goal("ratio", 0.5)),
    ]  # fmt: skip


def make_context(dest: Path, files: int) -> Path:
    """The build context: the Dockerfile and `files` small text files in 10 directories."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "Dockerfile").write_text(DOCKERFILE)
    for i in range(files):
        d = dest / "files" / f"dir{i % 10:02d}"
        d.mkdir(parents=True, exist_ok=True)
        seed = hashlib.sha256(str(i).encode()).hexdigest()
        (d / f"file{i:04d}.txt").write_text((seed + "\n") * (8 + i % 64))
    return dest


def check_image(d: Daemon, ref: str, files: int) -> None:
    """The built image runs and reports the file count its first stage saw."""
    got = d.cli.run("run", "--rm", "--network", "none", ref, timeout=60).stdout.strip()
    if got != str(files):
        raise procs.CommandFailed(f"{d.name}: {ref} reports {got!r} files, expected {files}")


def run(ctx: Context, rows: dict[str, Row], budget: float) -> None:
    n = file_count(ctx.quick)
    context = make_context(ctx.tmp / "build" / "context", n)
    daemons: dict[str, Daemon] = {}
    unavailable: dict[str, str] = {}
    for name, get in (("skiffd", ctx.skiffd), ("dockerd", ctx.dockerd)):
        try:
            daemons[name] = get()
        except Unavailable as e:
            unavailable[name] = str(e)

    def tidy(d: Daemon) -> None:
        for tag in ("bench-build:cold", "bench-build:cached"):
            try:
                d.cli.run("rmi", "-f", tag, timeout=120)
            except procs.CommandFailed:
                pass
        try:
            d.cli.run("image", "prune", "-f", timeout=120)
        except procs.CommandFailed:
            pass

    def cold(d: Daemon) -> float:
        tidy(d)
        return d.cli.timed(
            "build", "-q", "--no-cache", "--network", "none", "-t", "bench-build:cold",
            str(context), timeout=120,
        )  # fmt: skip

    def cached(d: Daemon) -> float:
        return d.cli.timed(
            "build", "-q", "--network", "none", "-t", "bench-build:cached", str(context),
            timeout=120,
        )  # fmt: skip

    def cold_warmup(d: Daemon) -> None:
        cold(d)
        check_image(d, "bench-build:cold", n)

    started = time.monotonic()
    out = ctx.alternate(
        [Side(k, partial(cold, d), partial(cold_warmup, d)) for k, d in daemons.items()],
        runs=ctx.runs,
        budget_s=budget * 0.75,
    )
    fill(rows["build-cold"], out, "skiffd", "dockerd", unavailable=unavailable)
    rows["build-cold"].notes.append(
        "`--no-cache --network none`, DOCKER_BUILDKIT=0; the first cold and the last cached "
        "build's images run and their file counts checked"
    )
    usable = {k: d for k, d in daemons.items() if k not in out.errors}
    cached_unavailable = {
        **unavailable,
        **{k: f"cold build failed: {e}" for k, e in out.errors.items()},
    }
    left = max(10.0, budget - (time.monotonic() - started))
    out = ctx.alternate(
        [Side(k, partial(cached, d)) for k, d in usable.items()], runs=ctx.runs * 2, budget_s=left
    )
    for name in usable:
        if name in out.errors:
            continue
        try:
            check_image(usable[name], "bench-build:cached", n)
        except procs.CommandFailed as e:
            out.errors[name] = f"the cached build's image is wrong: {e}"
    fill(rows["build-cached"], out, "skiffd", "dockerd", unavailable=cached_unavailable)
    for d in daemons.values():
        tidy(d)
