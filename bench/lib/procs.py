"""Processes for the bench: run and time commands, find an engine's processes, measure their
memory, and clean up what an engine left behind (processes, mounts, cgroups).

Functions that read /proc take a `proc` root so unit tests can point them at a fake tree.
Nothing here kills or unmounts anything that does not carry the caller's marker (the bench's
unique temp-dir path or cgroup name): other work on this machine is never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class CommandFailed(Exception):
    """A command exited non-zero or timed out; str() is a one-line reason."""


ERROR_WORD = re.compile(r"\berror\b", re.IGNORECASE)


def first_line(text: str, limit: int = 200) -> str:
    """The most telling line of an error output: a Python traceback's last line, else the first
    line that says "error" (the docker CLI prints deprecation notices first), else the first
    non-empty line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "(no output)"
    if any(ln.startswith("Traceback") for ln in lines):
        line = lines[-1]
    else:
        line = next((ln for ln in lines if ERROR_WORD.search(ln)), lines[0])
    return line if len(line) <= limit else line[: limit - 1] + "…"


def short_cmd(cmd: Sequence[str]) -> str:
    words = [os.path.basename(cmd[0]), *[c for c in cmd[1:] if not c.startswith("unix://")]]
    text = " ".join(words)
    return text if len(text) <= 80 else text[:79] + "…"


def run(
    cmd: Sequence[str],
    *,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion with its output captured; raise CommandFailed on failure."""
    try:
        proc = subprocess.run(
            list(cmd),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"{short_cmd(cmd)}: timed out after {timeout:g} s")
    except OSError as e:
        raise CommandFailed(f"{short_cmd(cmd)}: {e.strerror or e}")
    if check and proc.returncode != 0:
        raise CommandFailed(
            f"{short_cmd(cmd)}: exit {proc.returncode}: {first_line(proc.stderr or proc.stdout)}"
        )
    return proc


def timed(
    cmd: Sequence[str],
    *,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> float:
    """Wall-clock seconds of one successful run of `cmd` (output to pipes, stdin closed)."""
    start = time.perf_counter()
    run(cmd, timeout=timeout, env=env, cwd=cwd)
    return time.perf_counter() - start


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    name: str
    cmdline: str
    pidns: str


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def list_processes(proc: Path = Path("/proc")) -> dict[int, ProcInfo]:
    """Every process visible in `proc`, with its parent, name, cmdline and pid namespace."""
    out: dict[int, ProcInfo] = {}
    for entry in proc.iterdir() if proc.is_dir() else []:
        if not entry.name.isdigit():
            continue
        stat = _read(entry / "stat")
        if not stat:
            continue
        # comm is in parentheses and may hold spaces; fields after the last ')' are fixed.
        close = stat.rfind(")")
        name = stat[stat.find("(") + 1 : close]
        fields = stat[close + 2 :].split()
        try:
            ppid = int(fields[1])
        except (IndexError, ValueError):
            continue
        cmdline = _read(entry / "cmdline").replace("\0", " ").strip()
        try:
            pidns = os.readlink(entry / "ns" / "pid")
        except OSError:
            pidns = _read(entry / "ns" / "pid").strip()
        out[int(entry.name)] = ProcInfo(int(entry.name), ppid, name, cmdline, pidns)
    return out


def own_pidns(proc: Path = Path("/proc")) -> str:
    try:
        return os.readlink(proc / "self" / "ns" / "pid")
    except OSError:
        return _read(proc / "self" / "ns" / "pid").strip()


def _mentions(proc: Path, pid: int, info: ProcInfo, markers: tuple[str, ...]) -> bool:
    if any(m in info.cmdline for m in markers):
        return True
    try:
        cwd = os.readlink(proc / str(pid) / "cwd")
        if any(m in cwd for m in markers):
            return True
    except OSError:
        pass
    environ = _read(proc / str(pid) / "environ")
    return any(m in environ for m in markers)


def _markers(marker: str | Sequence[str]) -> tuple[str, ...]:
    return (marker,) if isinstance(marker, str) else tuple(marker)


def engine_pids(
    procs: Mapping[int, ProcInfo],
    seeds: Iterable[int],
    marker: str | Sequence[str],
    pidns: str,
    proc: Path = Path("/proc"),
    exclude: Iterable[int] = (),
) -> set[int]:
    """The processes of one engine: the seed pids (the daemon), every process whose command
    line, working directory or environment names `marker` (its private temp dir: shims that
    re-parented themselves to init still carry it), and all their descendants — but only those
    in the host pid namespace `pidns`, so container processes are not counted as the engine."""
    excluded = set(exclude)
    found = {p for p in seeds if p in procs}
    found |= {
        pid
        for pid, info in procs.items()
        if pid not in excluded and _mentions(proc, pid, info, _markers(marker))
    }
    children: dict[int, list[int]] = {}
    for pid, info in procs.items():
        children.setdefault(info.ppid, []).append(pid)
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return {p for p in found if p not in excluded and procs[p].pidns == pidns}


def memory_kib(pid: int, proc: Path = Path("/proc")) -> tuple[int, int] | None:
    """(RSS, PSS) of a process in KiB, from status and smaps_rollup; None if it is gone."""
    rss = pss = None
    for line in _read(proc / str(pid) / "status").splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    for line in _read(proc / str(pid) / "smaps_rollup").splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
    if rss is None or pss is None:
        return None
    return rss, pss


def process_label(info: ProcInfo) -> str:
    """A readable name: the program's basename (the script's, for a Python interpreter)."""
    argv = info.cmdline.split()
    if not argv:
        return info.name
    name = os.path.basename(argv[0])
    if name.startswith("python") and len(argv) > 1 and not argv[1].startswith("-"):
        name = os.path.basename(argv[1])
    return name


@dataclass(frozen=True)
class MemorySample:
    rss_mib: float
    pss_mib: float
    processes: dict[str, int]  # process name -> count


def engine_memory(
    seeds: Iterable[int],
    marker: str | Sequence[str],
    proc: Path = Path("/proc"),
    exclude: Iterable[int] = (),
) -> MemorySample:
    """Sum of RSS and PSS over one engine's processes (see engine_pids)."""
    procs = list_processes(proc)
    pids = engine_pids(procs, seeds, marker, own_pidns(proc), proc, exclude)
    rss = pss = 0
    names: dict[str, int] = {}
    for pid in sorted(pids):
        mem = memory_kib(pid, proc)
        if mem is None:
            continue
        rss += mem[0]
        pss += mem[1]
        name = process_label(procs[pid])
        names[name] = names.get(name, 0) + 1
    return MemorySample(rss / 1024, pss / 1024, names)


def kill_marked(marker: str, proc: Path = Path("/proc")) -> list[int]:
    """SIGKILL every process (other than this one) whose command line names `marker`."""
    killed = []
    me = os.getpid()
    for pid, info in list_processes(proc).items():
        if pid != me and marker in info.cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed


def mounts_under(path: str, mountinfo: str) -> list[str]:
    """Mount points at or below `path` in a mountinfo text, deepest first."""
    prefix = path.rstrip("/")
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(set(points), key=lambda p: (-p.count("/"), p))


def unmount_under(path: str) -> list[str]:
    """Lazily unmount everything at or below `path`; returns what could not be unmounted."""
    left = []
    for point in mounts_under(path, _read(Path("/proc/self/mountinfo"))):
        res = subprocess.run(["umount", "-l", point], capture_output=True, text=True)
        if res.returncode != 0:
            left.append(point)
    return left


def remove_tree(path: Path) -> None:
    """Unmount then remove a temp tree; immutable or busy leftovers are reported, not hidden."""
    leftover = unmount_under(str(path))
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        raise OSError(f"could not remove {path} (mounts left: {leftover or 'none'})")


def cgroup_dirs(name_prefix: str, mountinfo: str, self_cgroup: str) -> list[Path]:
    """Cgroup directories named `name_prefix*` directly under this process's cgroup (or its
    hierarchy root) in every mounted hierarchy, deepest first for rmdir."""
    bases = {"/"} | {
        line.split(":", 2)[2] for line in self_cgroup.splitlines() if line.count(":") >= 2
    }
    found: list[Path] = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fstype = right.split()[0] if right else ""
        if fstype not in ("cgroup", "cgroup2"):
            continue
        mount = Path(left.split()[4])
        for base in bases:
            parent = mount / base.lstrip("/")
            if not parent.is_dir():
                continue
            for entry in parent.iterdir():
                if entry.name.startswith(name_prefix) and entry.is_dir():
                    for dirpath, _dirs, _files in os.walk(entry, topdown=False):
                        found.append(Path(dirpath))
    return found


def remove_cgroups(name_prefix: str) -> list[str]:
    """Kill what is left in the bench's cgroups (see cgroup_dirs) and rmdir them; returns
    those that stayed (busy)."""
    left = []
    dirs = cgroup_dirs(
        name_prefix, _read(Path("/proc/self/mountinfo")), _read(Path("/proc/self/cgroup"))
    )
    # Processes still in the bench's cgroups are containers an engine failed to remove.
    stray = {int(p) for d in dirs for p in _read(d / "cgroup.procs").split() if p.isdigit()}
    for pid in stray - {os.getpid()}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    if stray:
        time.sleep(0.5)
    for d in sorted(set(dirs), key=lambda p: -len(p.parts)):
        try:
            d.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            left.append(str(d))
    return left
