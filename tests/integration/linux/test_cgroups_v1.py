"""Real cgroups on this host's kernel, nested under the test process's own cgroup.

Each test gets its own cgroup <own>/skiff/skiff-test-<uuid>/c in every hierarchy; the fixture
kills whatever is left in it and destroys it even when the test fails.
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
from skiff.linux.cgroups import V1Manager, load_manager, open_manager

ROOT = Path("/sys/fs/cgroup")

if not (ROOT / "memory" / "cgroup.procs").exists() or (ROOT / "cgroup.controllers").exists():
    pytest.skip("needs cgroup v1 hierarchies under /sys/fs/cgroup", allow_module_level=True)

GO = "import sys; sys.stdin.readline()\n"


def own_dirs(m: V1Manager) -> dict[str, set[str]]:
    """The listing of our own cgroup in each hierarchy (the parent of the skiff subtree)."""
    out = {}
    for path in set(m.paths().values()):
        own = Path(path).parents[2]
        out[str(own)] = {p.name for p in own.iterdir() if p.is_dir()}
    return out


@pytest.fixture
def mgr() -> Iterator[V1Manager]:
    tag = f"skiff-test-{uuid.uuid4().hex[:12]}"
    m = open_manager(f"{tag}/c", tag)
    assert isinstance(m, V1Manager)
    before = own_dirs(m)
    try:
        m.create()
        yield m
    finally:
        try:
            if os.path.isdir(m.paths()["freezer"]):
                m.kill_all(signal.SIGKILL)
                deadline = time.monotonic() + 5
                while m.pids() and time.monotonic() < deadline:
                    time.sleep(0.01)
        finally:
            m.destroy()
    for path in m.paths().values():
        assert not os.path.exists(path)
        assert not os.path.exists(os.path.dirname(path))  # the skiff-test-<uuid> level
    after = own_dirs(m)
    for own, names in before.items():
        # Other tests may be using the shared skiff subtree at the same time; ours is gone.
        assert after[own] - {"skiff"} == names - {"skiff"}


def spawn(script: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", GO + script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def go(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()


def test_paths_nest_under_our_own_cgroup(mgr: V1Manager) -> None:
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(","):
            own[c] = path
    memory = mgr.paths()["memory"]
    assert memory.startswith(
        str(ROOT / "memory") + own["memory"].rstrip("/") + "/skiff/skiff-test-"
    )
    for path in mgr.paths().values():
        assert "/skiff/skiff-test-" in path


def test_child_is_added_and_oom_killed_beyond_the_memory_limit(mgr: V1Manager) -> None:
    mgr.apply({"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    memory = Path(mgr.paths()["memory"])
    assert (memory / "memory.limit_in_bytes").read_text().strip() == str(32 << 20)
    child = spawn("x = b'x' * (256 << 20)\nprint('survived', flush=True)\n")
    try:
        mgr.add_process(child.pid)
        assert child.pid in mgr.pids()
        cgroup_line = next(
            line
            for line in Path(f"/proc/{child.pid}/cgroup").read_text().splitlines()
            if ":memory:" in line
        )
        assert cgroup_line.endswith(mgr.paths()["memory"][len(str(ROOT / "memory")) :])
        go(child)
        out, _ = child.communicate(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert "survived" not in out
    stats = mgr.stats()["memory"]
    assert stats["oom_kill"] >= 1 or stats["failcnt"] > 0
    assert stats["limit"] == 32 << 20


def test_pids_limit_makes_fork_fail(mgr: V1Manager) -> None:
    mgr.apply({"pids": {"limit": 4}})
    child = spawn(
        "import os, time\n"
        "n = err = 0\n"
        "for _ in range(10):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError as e:\n"
        "        err = e.errno\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(10)\n"
        "        os._exit(0)\n"
        "    n += 1\n"
        "print(n, err, flush=True)\n"
    )
    try:
        mgr.add_process(child.pid)
        go(child)
        assert child.stdout is not None
        forked, err = map(int, child.stdout.readline().split())
    finally:
        mgr.kill_all(signal.SIGKILL)
        child.wait()
    assert forked == 3  # 4 tasks in all
    assert err == 11  # EAGAIN
    assert mgr.stats()["pids"]["limit"] == 4


def test_freeze_and_thaw_a_child(mgr: V1Manager, tmp_path: Path) -> None:
    ticks = tmp_path / "ticks"
    child = spawn(
        f"import time\nf = open({str(ticks)!r}, 'a', buffering=1)\n"
        "while True:\n    f.write('.')\n    f.flush()\n    time.sleep(0.005)\n"
    )
    try:
        mgr.add_process(child.pid)
        go(child)
        deadline = time.monotonic() + 10
        while (not ticks.exists() or ticks.stat().st_size < 3) and time.monotonic() < deadline:
            time.sleep(0.01)
        mgr.freeze()
        assert mgr.is_frozen()
        assert (Path(mgr.paths()["freezer"]) / "freezer.state").read_text().strip() == "FROZEN"
        size = ticks.stat().st_size
        time.sleep(0.2)
        assert ticks.stat().st_size == size
        mgr.thaw()
        assert not mgr.is_frozen()
        time.sleep(0.2)
        assert ticks.stat().st_size > size
    finally:
        child.kill()
        child.wait()


def test_stats_are_non_zero(mgr: V1Manager) -> None:
    child = spawn(
        "import time\nend = time.monotonic() + 0.3\nx = bytearray(8 << 20)\nx[::4096] = b'y' * len(x[::4096])\n"
        "while time.monotonic() < end: pass\nprint('done', flush=True)\nsys.stdin.readline()\n"
    )
    try:
        mgr.add_process(child.pid)
        go(child)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "done"
        stats = mgr.stats()
    finally:
        child.kill()
        child.wait()
    assert stats["cpu"]["usage"]["total"] > 100_000_000  # ≥ 0.1 s of CPU in ns
    assert len(stats["cpu"]["usage"]["per_cpu"]) == os.cpu_count()
    assert stats["cpu"]["usage"]["user"] > 0
    assert stats["memory"]["usage"] > 4 << 20
    assert stats["memory"]["stats"]
    assert stats["pids"]["current"] >= 1
    assert isinstance(stats["blkio"]["io_service_bytes_recursive"], list)


def test_kill_all_reaches_grandchildren(mgr: V1Manager) -> None:
    child = spawn(
        "import os, time\n"
        "if os.fork() == 0:\n    time.sleep(60)\n    os._exit(0)\n"
        "print('ready', flush=True)\ntime.sleep(60)\n"
    )
    try:
        mgr.add_process(child.pid)
        go(child)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        assert len(mgr.pids()) == 2
        mgr.kill_all(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while mgr.pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mgr.pids() == []
        assert not mgr.is_frozen()
    finally:
        child.kill()
        child.wait()


def test_device_rules_are_enforced(mgr: V1Manager) -> None:
    mgr.apply(
        {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
            ]
        }
    )
    listed = (Path(mgr.paths()["devices"]) / "devices.list").read_text().split("\n")
    assert "c 1:3 rwm" in listed and "c 1:5 r" in listed
    child = spawn(
        "import errno\n"
        "for dev, mode in (('/dev/null', 'w'), ('/dev/zero', 'r'), ('/dev/zero', 'w'), ('/dev/full', 'r')):\n"
        "    try:\n        open(dev, mode).close()\n        print(0, flush=True)\n"
        "    except OSError as e:\n        print(e.errno, flush=True)\n"
    )
    try:
        mgr.add_process(child.pid)
        go(child)
        out, _ = child.communicate(timeout=10)
    finally:
        child.kill()
        child.wait()
    assert out.split() == ["0", "0", "1", "1"]  # EPERM where no rule allows


def test_real_files_accept_a_docker_like_resource_set_and_updates(mgr: V1Manager) -> None:
    resources = {
        "memory": {
            "limit": 256 << 20,
            "reservation": 128 << 20,
            "swap": 512 << 20,
            "swappiness": 0,
        },
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 100},
    }
    mgr.apply(resources)
    # update: raise the memory limit above the current memory+swap limit (needs the reverse order)
    mgr.apply({"memory": {"limit": 1 << 30, "swap": 2 << 30}, "cpu": {"quota": -1}})
    memory = Path(mgr.paths()["memory"])
    assert (memory / "memory.limit_in_bytes").read_text().strip() == str(1 << 30)
    assert (memory / "memory.memsw.limit_in_bytes").read_text().strip() == str(2 << 30)
    assert (Path(mgr.paths()["cpu"]) / "cpu.cfs_quota_us").read_text().strip() == "-1"
    assert (Path(mgr.paths()["cpuset"]) / "cpuset.cpus").read_text().strip() == "0"
    again = load_manager(mgr.to_dict())
    assert again.paths() == mgr.paths()


def test_blkio_weight_lands_in_the_file_the_kernel_offers(mgr: V1Manager) -> None:
    blkio = Path(mgr.paths()["blkio"])
    files = [f for f in ("blkio.weight", "blkio.bfq.weight") if (blkio / f).exists()]
    if not files:
        with pytest.raises(FailedPrecondition, match="blkio"):
            mgr.apply({"blockIO": {"weight": 500}})
        return
    mgr.apply({"blockIO": {"weight": 500}})
    assert (blkio / files[0]).read_text().split()[-1] == "500"


def test_a_controller_this_host_lacks_is_named(mgr: V1Manager) -> None:
    if "hugetlb" in mgr.paths():
        pytest.skip("this host mounts a v1 hugetlb hierarchy")
    mgr.apply({"hugepageLimits": []})
    with pytest.raises(FailedPrecondition, match="'hugetlb'"):
        mgr.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}]})
