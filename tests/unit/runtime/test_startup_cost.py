"""What a container start costs before it does anything: imports, interpreter exit, the
cgroup attach. Every `skiff-runtime create/run` pays these, so they are guarded here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import skiff
from skiff.runtime import warmup

SRC = str(Path(skiff.__file__).resolve().parent.parent)

# Each costs 1-10 ms to import; none is needed to start a container.
HEAVY = {
    "typing",
    "dataclasses",
    "inspect",
    "ast",
    "dis",
    "tokenize",
    "contextlib",
    "re",
    "enum",
    "collections",
    "importlib",
    "json",
    "logging",
    "shutil",
    "subprocess",
    "threading",
    "ctypes",  # 2.5 ms: the hot path binds libc with skiff.linux.cdata
}

START_PATH = """
import sys
sys.path.insert(0, {src!r})
import skiff.runtime.cli, skiff.runtime.create, skiff.runtime.lifecycle, skiff.runtime.foreground
import skiff.runtime.warmup
import skiff.linux.cgroups
from skiff.runtime import init
init.preload()
import skiff.runtime.intermediate, skiff.runtime.context, skiff.runtime.rootfs
from skiff.runtime.process import preload
preload({{"terminal": True}}, seccomp=False, hooks=True)
print(" ".join(sorted(sys.modules)))
"""


def test_container_start_path_imports_none_of_the_heavy_modules() -> None:
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", START_PATH.format(src=SRC)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert "skiff.runtime.rootfs" in out and "skiff.linux.cgroups.v1" in out
    assert sorted(HEAVY & set(out)) == []


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = (
        f"import sys; sys.path.insert(0, {SRC!r}); sys.argv = ['skiff-runtime', *{list(args)!r}]\n"
        "from skiff.runtime.cli import run_and_exit\n"
        "run_and_exit()\n"
    )
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False
    )


def test_run_and_exit_flushes_output_and_keeps_the_status() -> None:
    ok = _run_cli("--version")
    assert ok.returncode == 0
    assert ok.stdout.startswith("skiff-runtime version ")
    bad = _run_cli("no-such-verb")
    assert bad.returncode == 1
    assert "No help topic for 'no-such-verb'" in bad.stderr


def _fake_hierarchy(root: Path, name: str, members: str) -> Path:
    procs = root / name / "skiff-test" / "cgroup.procs"
    procs.parent.mkdir(parents=True)
    procs.write_text(members)
    return procs


def test_attach_priming_writes_only_a_cgroup_that_lists_this_process(tmp_path: Path) -> None:
    me = str(os.getpid())
    other = _fake_hierarchy(tmp_path, "cpu,cpuacct", "1\n2\n")  # lists others only
    listing = f"1\n{me}\n"
    ours = _fake_hierarchy(tmp_path, "systemd", listing)
    unified = _fake_hierarchy(tmp_path, "unified", f"{me}\n")
    proc_self = tmp_path / "cgroup"
    proc_self.write_text("3:cpu,cpuacct:/skiff-test\n1:name=systemd:/skiff-test\n0::/skiff-test\n")
    written = warmup.attach_to_own_cgroup(str(tmp_path), str(proc_self))
    assert written == str(ours)
    written_text = ours.read_text()  # a plain file: the pid overwrote its first bytes
    assert written_text.startswith(me) and written_text != listing
    assert other.read_text() == "1\n2\n"
    assert unified.read_text() == f"{me}\n"  # the first match wins; nothing else is touched


def test_attach_priming_gives_up_quietly(tmp_path: Path) -> None:
    proc_self = tmp_path / "cgroup"
    proc_self.write_text("0::/nowhere\nbroken line\n")
    assert warmup.attach_to_own_cgroup(str(tmp_path), str(proc_self)) is None
    assert warmup.attach_to_own_cgroup(str(tmp_path), str(tmp_path / "missing")) is None


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_attach_primer_attaches_while_kicked_and_stops_after_the_linger(tmp_path: Path) -> None:
    me = str(os.getpid())
    ours = _fake_hierarchy(tmp_path, "systemd", f"{me}\n")
    proc_self = tmp_path / "cgroup"
    proc_self.write_text("1:name=systemd:/skiff-test\n")
    primer = warmup.AttachPrimer(
        linger=0.1, cgroup_root=str(tmp_path), proc_self_cgroup=str(proc_self)
    )
    primer.disabled = False  # whatever the environment says
    primer.kick()
    assert _wait_for(lambda: primer.attaches >= 3)
    assert ours.read_text().startswith(me)
    assert _wait_for(lambda: not primer._running)  # the linger ran out: the thread ended
    stopped_at = primer.attaches
    time.sleep(0.05)
    assert primer.attaches == stopped_at
    primer.kick()  # a later kick starts it again
    assert _wait_for(lambda: primer.attaches > stopped_at)
    assert _wait_for(lambda: not primer._running)


def test_attach_primer_disables_itself_without_a_cgroup_that_lists_it(tmp_path: Path) -> None:
    proc_self = tmp_path / "cgroup"
    proc_self.write_text("0::/nowhere\n")
    primer = warmup.AttachPrimer(cgroup_root=str(tmp_path), proc_self_cgroup=str(proc_self))
    primer.disabled = False
    primer.kick()
    assert _wait_for(lambda: primer.disabled and not primer._running)
    assert primer.attaches == 0
    primer.kick()  # a no-op now
    assert not primer._running


def test_seccomp_cache_key_leaves_json_unimported() -> None:
    code = (
        f"import sys; sys.path.insert(0, {SRC!r})\n"
        "from skiff.linux import seccomp\n"
        "key = seccomp._cache_key({'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': []})\n"
        "print(len(key), 'json' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["64", "False"]
