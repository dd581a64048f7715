"""Load, bounded: 20 concurrent docker-py clients x 3 create/start/exec/stop/remove cycles.

Afterwards: no errors, zero leaks (skiffd's fds back to the baseline +-2, no mount, cgroup or
veth left) and skiffd's RSS back near idle. The long form is `bench/load/run`; both use
bench/load/loadlib.py.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

LOADLIB = Path(__file__).resolve().parents[3] / "bench" / "load" / "loadlib.py"
CLIENTS = int(os.environ.get("SKIFF_LOAD_CLIENTS", "20"))
ITERATIONS = int(os.environ.get("SKIFF_LOAD_ITERATIONS", "3"))
RSS_SLACK_KIB = 48 << 10  # Python's allocator keeps some arenas: "near idle" is idle + 48 MiB


@pytest.fixture(scope="module")
def loadlib() -> ModuleType:
    pytest.importorskip("docker", reason="docker-py is not installed")
    spec = importlib.util.spec_from_file_location("skiff_loadlib", LOADLIB)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["skiff_loadlib"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_concurrent_clients_hold_and_leak_nothing(loadlib: ModuleType, skiffd: Any) -> None:
    res = loadlib.run_load(
        skiffd.host, skiffd.proc.pid, skiffd.root, CLIENTS, ITERATIONS, timeout=200
    )
    print(res.summary())
    assert not res.errors, f"{len(res.errors)} failed cycles:\n" + "\n".join(res.errors[:20])
    assert res.ops == CLIENTS * ITERATIONS * 5, res.summary()
    assert not res.leaks(), f"leaks: {res.leaks()}\n{res.summary()}"
    assert res.after.rss_kib <= res.idle.rss_kib + RSS_SLACK_KIB, res.summary()
    r = skiffd.docker("ps", "-aq", "--filter", "name=load-")
    assert r.stdout.split() == [], f"containers left: {r.stdout}"
