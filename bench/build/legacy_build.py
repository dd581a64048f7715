"""Cold and fully cached legacy builds, skiffd vs dockerd, through the same docker CLI.

Not a test (pytest does not collect it): run it with two daemon sockets that both have a
`busybox:latest` image, e.g.

    python tests/e2e/build/bench_legacy_build.py unix:///tmp/dockerd.sock unix:///tmp/skiffd.sock

The workload is a two-stage Dockerfile copying a few hundred files and running a few shell
steps. "cold" is `--no-cache` (every step runs and makes its layer), "cached" is the same build
again with nothing changed. Prints the median of N runs per daemon and the ratios.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOCKERFILE = """\
FROM busybox AS build
COPY src/ /src/
RUN cd /src && find . -type f | wc -l > /count && cat $(find . -name '*.txt' | head -50) > /cat.out
RUN mkdir /out && cp -r /src /out/ && tar -cf /out/src.tar -C /src .
FROM busybox
COPY --from=build /out /app
RUN ls -R /app | wc -l
ENV APP=/app
CMD ["sh"]
"""


def make_context(root: Path, files: int = 300) -> None:
    (root / "Dockerfile").write_text(DOCKERFILE)
    for i in range(files):
        d = root / "src" / f"d{i % 12}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.txt").write_text(f"file {i}\n" * (i % 40 + 20))


def timed_build(host: str, ctx: Path, *args: str) -> float:
    env = dict(os.environ, DOCKER_HOST=host, DOCKER_BUILDKIT="0")
    docker = shutil.which("docker") or "/usr/local/bin/docker"
    start = time.perf_counter()
    r = subprocess.run(
        [docker, "build", "-q", *args, "-t", "bench:build", str(ctx)], capture_output=True, env=env
    )
    took = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"{host}: build failed: {r.stderr.decode()[-500:]}")
    return took


def main() -> None:
    hosts = sys.argv[1:3]
    runs = int(os.environ.get("RUNS", "5"))
    if len(hosts) != 2:
        raise SystemExit(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp)
        make_context(ctx)
        result: dict[str, dict[str, float]] = {}
        for host in hosts:
            timed_build(host, ctx, "--no-cache")  # warm the page cache and the CLI
            cold = [timed_build(host, ctx, "--no-cache") for _ in range(runs)]
            cached = [timed_build(host, ctx) for _ in range(runs)]
            result[host] = {"cold": statistics.median(cold), "cached": statistics.median(cached)}
            print(f"{host}: cold {result[host]['cold']:.3f}s cached {result[host]['cached']:.3f}s")
        ref, mine = result[hosts[0]], result[hosts[1]]
        print(
            f"ratio (second / first): cold {mine['cold'] / ref['cold']:.2f}x, cached {mine['cached'] / ref['cached']:.2f}x"
        )


if __name__ == "__main__":
    main()
