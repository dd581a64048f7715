from __future__ import annotations

import os
from pathlib import Path

from lib.procs import (
    cgroup_dirs,
    engine_memory,
    engine_pids,
    first_line,
    list_processes,
    mounts_under,
)

HOST_NS = "pid:[4026531836]"
CTR_NS = "pid:[4026532999]"


def fake_proc(
    root: Path, pid: int, ppid: int, comm: str, cmdline: list[str], ns: str = HOST_NS,
    rss: int = 1000, pss: int = 500,
) -> None:  # fmt: skip
    d = root / str(pid)
    (d / "ns").mkdir(parents=True)
    (d / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1\n")
    (d / "cmdline").write_text("\0".join(cmdline) + "\0")
    os.symlink(ns, d / "ns" / "pid")
    (d / "status").write_text(f"Name:\t{comm}\nVmRSS:\t{rss} kB\n")
    (d / "smaps_rollup").write_text(f"Rss: {rss} kB\nPss: {pss} kB\n")
    (d / "environ").write_text("PATH=/bin\0")


def engine_tree(root: Path) -> None:
    root.mkdir()
    os.symlink(HOST_NS, root / "self")  # unused target; own_pidns reads self/ns/pid below
    (root / "self").unlink()
    (root / "self" / "ns").mkdir(parents=True)
    os.symlink(HOST_NS, root / "self" / "ns" / "pid")
    fake_proc(root, 1, 0, "init", ["/sbin/init"])
    fake_proc(
        root,
        100,
        1,
        "dockerd",
        ["dockerd", "--data-root", "/tmp/b1/dockerd/data"],
        rss=80_000,
        pss=40_000,
    )
    fake_proc(
        root,
        101,
        100,
        "containerd",
        ["containerd", "--config", "/tmp/b1/dockerd/exec/c.toml"],
        rss=40_000,
        pss=20_000,
    )
    # a shim that re-parented itself to init, found by naming the engine's dir
    fake_proc(
        root,
        200,
        1,
        "containerd-shim",
        ["/usr/bin/containerd-shim-runc-v2", "-address", "/tmp/b1/dockerd/exec/containerd.sock"],
        rss=13_000,
        pss=3_000,
    )
    # the container's process: another pid namespace, not the engine
    fake_proc(root, 201, 200, "sleep", ["sleep", "600"], ns=CTR_NS, rss=500, pss=100)
    # someone else's daemon on the machine
    fake_proc(root, 300, 1, "dockerd", ["dockerd", "--data-root", "/tmp/other/data"], rss=90_000)
    # a second bench engine whose path shares a prefix
    fake_proc(
        root,
        400,
        1,
        "skiffd",
        ["/venv/bin/python3", "/venv/bin/skiffd", "--data-root", "/tmp/b1/skiffd/data"],
        rss=30_000,
    )


def test_list_processes_parses_comm_with_spaces(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    fake_proc(proc, 7, 1, "tmux: server", ["tmux"])
    info = list_processes(proc)[7]
    assert (info.ppid, info.name, info.cmdline, info.pidns) == (1, "tmux: server", "tmux", HOST_NS)


def test_engine_pids_follow_ancestry_and_marker_not_containers(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    engine_tree(proc)
    procs = list_processes(proc)
    pids = engine_pids(procs, [100], "/tmp/b1/dockerd", HOST_NS, proc)
    assert pids == {100, 101, 200}


def test_engine_memory_sums_rss_and_pss(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    engine_tree(proc)
    sample = engine_memory([100], "/tmp/b1/dockerd", proc)
    assert sample.rss_mib == (80_000 + 40_000 + 13_000) / 1024
    assert sample.pss_mib == (40_000 + 20_000 + 3_000) / 1024
    assert sample.processes == {"dockerd": 1, "containerd": 1, "containerd-shim-runc-v2": 1}
    skiffd = engine_memory([400], ["/tmp/b1/skiffd", "/run/sk1"], proc)
    assert skiffd.processes == {"skiffd": 1}
    assert skiffd.rss_mib == 30_000 / 1024


def test_first_line_prefers_a_tracebacks_last_line() -> None:
    tb = "Traceback (most recent call last):\n  File x\nImportError: no module y\n"
    assert first_line(tb) == "ImportError: no module y"
    assert (
        first_line("\n  skiffd: not built yet (issue 4)\nmore\n")
        == "skiffd: not built yet (issue 4)"
    )
    assert first_line("") == "(no output)"
    cli = (
        "DEPRECATED: The legacy builder is deprecated and will be removed.\n"
        "            Install the buildx component to build images with BuildKit:\n"
        "Error response from daemon: dockerfile parse error line 3: unknown instruction\n"
    )
    assert first_line(cli) == (
        "Error response from daemon: dockerfile parse error line 3: unknown instruction"
    )


def test_mounts_under_deepest_first_and_exact_prefix() -> None:
    info = "\n".join(
        [
            "22 1 0:1 / /tmp/b1 rw - tmpfs t rw",
            "23 22 0:2 / /tmp/b1/a rw - overlay o rw",
            "24 23 0:3 / /tmp/b1/a/b\\040c rw - tmpfs t rw",
            "25 1 0:4 / /tmp/b10 rw - tmpfs t rw",
        ]
    )
    assert mounts_under("/tmp/b1", info) == ["/tmp/b1/a/b c", "/tmp/b1/a", "/tmp/b1"]


def test_cgroup_dirs_finds_only_the_prefix_under_own_cgroups(tmp_path: Path) -> None:
    mem = tmp_path / "memory"
    (mem / "api" / "me" / "skiff-bench-1234-dockerd" / "ctr").mkdir(parents=True)
    (mem / "api" / "me" / "other").mkdir(parents=True)
    pids = tmp_path / "pids"
    (pids / "skiff-bench-1234-runtime").mkdir(parents=True)
    (pids / "skiff-bench-9999").mkdir(parents=True)
    mountinfo = (
        f"30 1 0:5 / {mem} rw - cgroup cgroup rw,memory\n"
        f"31 1 0:6 / {pids} rw - cgroup cgroup rw,pids\n"
        "32 1 0:7 / /proc rw - proc proc rw\n"
    )
    self_cgroup = "4:memory:/api/me\n8:pids:/\n"
    found = cgroup_dirs("skiff-bench-1234", mountinfo, self_cgroup)
    assert set(found) == {
        mem / "api" / "me" / "skiff-bench-1234-dockerd" / "ctr",
        mem / "api" / "me" / "skiff-bench-1234-dockerd",
        pids / "skiff-bench-1234-runtime",
    }
    # children come before their parents, so rmdir works in this order
    assert found.index(mem / "api/me/skiff-bench-1234-dockerd/ctr") < found.index(
        mem / "api/me/skiff-bench-1234-dockerd"
    )
