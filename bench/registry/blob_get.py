"""Blob GET throughput of a 100 MB blob on loopback: `skiff registry serve` vs distribution 2.8.

Not a test (pytest does not collect it): run `python tests/e2e/distribution/bench_blob_get.py`.
Meant to move to bench/. Prints best and median MB/s for one client and for four in parallel
(curl -o /dev/null), with both registries on the same machine in the same run.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration" / "distribution"))
import helpers

SIZE_MB = 100


def push(host: str, data: bytes) -> str:
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    c = http.client.HTTPConnection(host)
    c.request("POST", "/v2/bench/blob/blobs/uploads/")
    r = c.getresponse()
    r.read()
    loc = r.headers["Location"]
    c.request("PUT", f"{loc}{'&' if '?' in loc else '?'}digest={d}", body=data)
    r = c.getresponse()
    r.read()
    assert r.status == 201, r.status
    return d


def measure(host: str, d: str, rounds: int, parallel: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        procs = [
            subprocess.Popen(
                ["curl", "-sf", "-o", "/dev/null", f"http://{host}/v2/bench/blob/blobs/{d}"]
            )
            for _ in range(parallel)
        ]
        for p in procs:
            assert p.wait() == 0
        times.append(time.perf_counter() - t)
    times.sort()
    return SIZE_MB * parallel / times[0], SIZE_MB * parallel / times[len(times) // 2]


def main() -> None:
    data = os.urandom(SIZE_MB * 1000 * 1000)
    tmp = Path(tempfile.mkdtemp(prefix="skiff-blob-get-"))
    try:
        rows = []
        with helpers.skiff_registry(tmp, "--quiet") as reg:
            d = push(reg.host, data)
            rows.append(("skiff registry", measure(reg.host, d, 7, 1), measure(reg.host, d, 5, 4)))
        with helpers.docker_registry(tmp) as host:
            d = push(host, data)
            rows.append(("distribution 2.8", measure(host, d, 7, 1), measure(host, d, 5, 4)))
        for name, one, four in rows:
            print(
                f"{name:17s} 1 client: best {one[0]:5.0f} MB/s, median {one[1]:5.0f} MB/s; "
                f"4 parallel: best {four[0]:5.0f} MB/s, median {four[1]:5.0f} MB/s"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
