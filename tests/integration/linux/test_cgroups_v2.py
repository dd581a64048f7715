"""V2Manager on a real cgroup2 hierarchy.

On this hybrid host the cgroup2 mount at /sys/fs/cgroup/unified holds no resource controllers
but has the v2 core: cgroup.procs, cgroup.freeze/events, cgroup.kill. On a pure v2 host the test
uses /sys/fs/cgroup itself. Controllers the fixture enables in the parent's subtree_control are
disabled again afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.errors import FailedPrecondition
from skiff.linux.cgroups import V2Manager, open_manager

CANDIDATES = [Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")]
_found = [p for p in CANDIDATES if (p / "cgroup.controllers").exists()]
if not _found:
    pytest.skip("no cgroup2 hierarchy mounted", allow_module_level=True)
ROOT: Path = _found[0]


def own_cgroup() -> Path:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return ROOT / line[3:].lstrip("/")
    raise AssertionError("no v2 entry in /proc/self/cgroup")


@pytest.fixture
def mgr() -> Iterator[V2Manager]:
    tag = f"skiff-test-{uuid.uuid4().hex[:12]}"
    own = own_cgroup()
    subtree = own / "cgroup.subtree_control"
    enabled_before = set(subtree.read_text().split())
    listing_before = {p.name for p in own.iterdir() if p.is_dir()}
    m = open_manager(f"{tag}/c", tag, root=str(ROOT))
    assert isinstance(m, V2Manager)
    try:
        m.create()
        yield m
    finally:
        try:
            if os.path.isdir(m.paths()["unified"]):
                m.kill_all(signal.SIGKILL)
                deadline = time.monotonic() + 5
                while m.pids() and time.monotonic() < deadline:
                    time.sleep(0.01)
        finally:
            m.destroy()
            for c in set(subtree.read_text().split()) - enabled_before:
                try:
                    subtree.write_text(f"-{c}")
                except OSError:
                    pass  # another test's cgroup still uses it; that test restores it
    assert not os.path.exists(m.paths()["unified"])
    listing_after = {p.name for p in own.iterdir() if p.is_dir()}
    assert listing_after - {"skiff"} == listing_before - {"skiff"}


def spawn_ticker(ticks: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys, time\nsys.stdin.readline()\n"
            "if os.fork() == 0:\n    time.sleep(60)\n    os._exit(0)\n"
            f"f = open({str(ticks)!r}, 'a')\n"
            "while True:\n    f.write('.')\n    f.flush()\n    time.sleep(0.005)\n",
        ],
        stdin=subprocess.PIPE,
        text=True,
    )


def start(child: subprocess.Popen[str], ticks: Path) -> None:
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()
    deadline = time.monotonic() + 10
    while (not ticks.exists() or ticks.stat().st_size < 3) and time.monotonic() < deadline:
        time.sleep(0.01)


def test_members_freeze_thaw_and_cgroup_kill(mgr: V2Manager, tmp_path: Path) -> None:
    ticks = tmp_path / "ticks"
    child = spawn_ticker(ticks)
    try:
        mgr.add_process(child.pid)
        start(child, ticks)
        assert len(mgr.pids()) == 2 and child.pid in mgr.pids()
        mgr.freeze()
        assert mgr.is_frozen()
        size = ticks.stat().st_size
        time.sleep(0.2)
        assert ticks.stat().st_size == size
        mgr.thaw()
        assert not mgr.is_frozen()
        time.sleep(0.2)
        assert ticks.stat().st_size > size
        mgr.kill_all(signal.SIGKILL)  # cgroup.kill
        assert child.wait(timeout=10) == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while mgr.pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mgr.pids() == []
    finally:
        child.kill()
        child.wait()


def test_kill_all_with_another_signal_freezes_around_it(mgr: V2Manager, tmp_path: Path) -> None:
    ticks = tmp_path / "ticks"
    child = spawn_ticker(ticks)
    try:
        mgr.add_process(child.pid)
        start(child, ticks)
        mgr.kill_all(signal.SIGTERM)
        assert child.wait(timeout=10) == -signal.SIGTERM
        assert not mgr.is_frozen()
    finally:
        child.kill()
        child.wait()


def test_missing_controllers_are_named(mgr: V2Manager) -> None:
    available = set((Path(mgr.paths()["unified"]) / "cgroup.controllers").read_text().split())
    if "memory" in available:
        pytest.skip("memory controller available here")
    mgr.apply({"memory": {}})
    with pytest.raises(FailedPrecondition, match="'memory'"):
        mgr.apply({"memory": {"limit": 64 << 20}})


def test_hugetlb_limit_when_the_controller_is_delegated(mgr: V2Manager) -> None:
    leaf = Path(mgr.paths()["unified"])
    if not (leaf / "hugetlb.2MB.max").exists():
        pytest.skip("hugetlb (2MB pages) not delegated to our cgroup here")
    mgr.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
    assert (leaf / "hugetlb.2MB.max").read_text().strip() == str(4 << 20)
    assert mgr.stats()["hugetlb"]["2MB"]["usage"] == 0


def test_device_rules_are_enforced_by_a_bpf_program(mgr: V2Manager) -> None:
    rules = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
    ]
    probe = (
        "import sys\nsys.stdin.readline()\n"
        "for dev, mode in (('/dev/null', 'w'), ('/dev/zero', 'r'), ('/dev/zero', 'w'), ('/dev/full', 'r')):\n"
        "    try:\n        open(dev, mode).close()\n        print(0, flush=True)\n"
        "    except OSError as e:\n        print(e.errno, flush=True)\n"
    )

    def run_probe() -> list[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", probe], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            mgr.add_process(child.pid)
            out, _ = child.communicate("go\n", timeout=10)
        finally:
            child.kill()
            child.wait()
        return out.split()

    mgr.apply({"devices": rules})
    assert run_probe() == ["0", "0", "1", "1"]  # EPERM where no rule allows
    # An update replaces the program instead of stacking a second one.
    mgr.apply({"devices": [{"allow": True, "access": "rwm"}]})
    assert run_probe() == ["0", "0", "0", "0"]
