"""The machine and the software under test, as the report's header describes them."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

VERSION_COMMANDS: dict[str, list[str]] = {
    "dockerd": ["dockerd", "--version"],
    "containerd": ["containerd", "--version"],
    "runc": ["runc", "--version"],
    "podman": ["podman", "--version"],
    "docker-registry (distribution)": ["docker-registry", "--version"],
    "skopeo": ["skopeo", "--version"],
    "hyperfine": ["hyperfine", "--version"],
    "GNU tar": ["tar", "--version"],
    "zstd": ["zstd", "--version"],
}


def cgroup_mode(mountinfo: str) -> str:
    """'v2' (unified at /sys/fs/cgroup), 'hybrid' (v1 controllers plus a cgroup2 mount) or 'v1'."""
    v1 = v2 = False
    unified_root = False
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        if not right:
            continue
        fstype = right.split()[0]
        point = left.split()[4]
        if fstype == "cgroup2":
            v2 = True
            unified_root = unified_root or point == "/sys/fs/cgroup"
        elif fstype == "cgroup":
            v1 = True
    if unified_root or (v2 and not v1):
        return "v2"
    if v1 and v2:
        return "hybrid"
    return "v1" if v1 else "none"


def memory_total(meminfo: str) -> str:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def tool_version(cmd: list[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return "absent"
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    text = (res.stdout or res.stderr).strip().splitlines()
    return text[0].strip("* \t") if text else "unknown"


def skiff_version(repo: Path) -> str:
    try:
        from importlib.metadata import version

        ver = version("skiff")
    except Exception:
        ver = "unknown"
    try:
        rev = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
        untracked = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
        if rev:
            ver += f" (git {rev}{' + uncommitted changes' if dirty or untracked else ''})"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return ver


def describe(repo: Path, docker_cli: str) -> dict[str, object]:
    """Cores, memory, kernel, cgroup mode, date, and the versions of skiff and every anchor."""

    def read(path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    versions = {name: tool_version(cmd) for name, cmd in VERSION_COMMANDS.items()}
    versions["docker CLI"] = tool_version([docker_cli, "--version"])
    versions["skiff"] = skiff_version(repo)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu_model(read("/proc/cpuinfo")),
        "memory": memory_total(read("/proc/meminfo")),
        "kernel": platform.release(),
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", "unknown")
        if hasattr(platform, "freedesktop_os_release")
        else "unknown",
        "cgroup_mode": cgroup_mode(read("/proc/self/mountinfo")),
        "python": platform.python_version(),
        "versions": versions,
    }


def cpu_busy_fraction(before: str, after: str) -> float:
    """The fraction of CPU time not idle (idle + iowait) between two /proc/stat snapshots."""

    def totals(stat: str) -> tuple[int, int]:
        for line in stat.splitlines():
            if line.startswith("cpu "):
                fields = [int(v) for v in line.split()[1:]]
                idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
                return sum(fields[:8]), idle
        raise ValueError("/proc/stat has no aggregate cpu line")

    total0, idle0 = totals(before)
    total1, idle1 = totals(after)
    elapsed = total1 - total0
    if elapsed <= 0:
        return 0.0
    return max(0.0, min(1.0, 1.0 - (idle1 - idle0) / elapsed))


def wait_quiet(
    busy_below: float = 0.10,
    window_s: float = 0.2,
    max_wait_s: float = 3.0,
    stat_path: str = "/proc/stat",
) -> float:
    """Wait until the machine's CPUs are busy less than `busy_below` over one `window_s`
    (what an engine's clean-up left running has finished), at most `max_wait_s`; returns the
    seconds waited. Untimed: called between samples, so no side starts on the other's (or its
    own previous run's) clean-up."""
    import time

    start = time.monotonic()
    while True:
        with open(stat_path) as f:
            before = f.read()
        time.sleep(window_s)
        with open(stat_path) as f:
            after = f.read()
        waited = time.monotonic() - start
        if cpu_busy_fraction(before, after) < busy_below or waited >= max_wait_s:
            return waited
