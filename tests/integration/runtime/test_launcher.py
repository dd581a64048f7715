"""The installed `skiff-runtime` command: a C launcher (src/skiff/runtime/launcher.c) that
begins the cgroup attach's grace period, then execs the Python runtime with the same arguments."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import skiff

LAUNCHER_C = Path(skiff.__file__).resolve().parent / "runtime" / "launcher.c"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build it")

SCRIPT = """
import ctypes, os, sys
if os.environ.get("LAUNCHER_TEST_SUBREAPER"):
    flag = ctypes.c_int(-1)
    ctypes.CDLL(None, use_errno=True).prctl(37, ctypes.byref(flag), 0, 0, 0)  # GET_CHILD_SUBREAPER
    print(flag.value, os.environ.get("_SKIFF_RUNTIME_SUBREAPER"), flush=True)
    sys.exit(0)
print(repr(sys.argv[1:]), sys.flags.isolated, sys.flags.no_site, flush=True)
sys.exit(int(os.environ.get("LAUNCHER_TEST_EXIT", "0")))
"""


def _launcher_with(d: Path, script_text: str) -> Path:
    """The launcher built in `d`, running a script of ours instead of the runtime."""
    script = d / "skiff-runtime.py"
    script.write_text(script_text)
    exe = d / "skiff-runtime"
    subprocess.run(
        [
            "gcc", "-O2", "-Wall", "-Werror", "-o", str(exe),
            f'-DSKIFF_PYTHON="{sys.executable}"', f'-DSKIFF_SCRIPT="{script}"',
            str(LAUNCHER_C),
        ],
        check=True,
    )  # fmt: skip
    return exe


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _launcher_with(tmp_path_factory.mktemp("launcher"), SCRIPT)


@pytest.mark.parametrize("args", [["--version"], ["--root", "/x", "run", "--bundle", "b", "id"]])
def test_launcher_passes_arguments_and_exit_status(launcher: Path, args: list[str]) -> None:
    res = subprocess.run(
        [str(launcher), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "LAUNCHER_TEST_EXIT": "7"},
    )
    assert res.returncode == 7, res.stderr
    assert res.stdout == f"{args!r} 1 1\n"  # the same arguments; isolated (-I), no site (-S)


CALLER = """
import os, subprocess, sys, time
out = subprocess.run([sys.argv[1], "run", "x"], capture_output=True, text=True, timeout=30)
time.sleep(0.05)
mine = []
for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == os.getpid():
            mine.append(entry)
print(out.returncode, "'run'" in out.stdout, mine)
"""


def test_priming_child_is_not_left_to_the_caller(launcher: Path) -> None:
    """`run` primes; a caller (not a subreaper) reads EOF on the runtime's output when it exits
    and has no child left over: the priming child holds none of its descriptors and is
    reparented, not waited for."""
    res = subprocess.run(
        [sys.executable, "-c", CALLER, str(launcher)], capture_output=True, text=True, timeout=60
    )
    assert res.stdout.strip() == "0 True []", res.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--bundle", "b", "id"], "1 1"),
        (["--root", "/r", "--debug", "run", "-d", "id"], "1 1"),
        (["--root", "/r", "create", "id"], "0 None"),
        (["--root", "run", "state", "id"], "0 None"),  # "run" is the value of --root
        (["exec", "id", "run"], "0 None"),
    ],
)
def test_run_is_made_a_child_subreaper_and_told_so(
    launcher: Path, args: list[str], expected: str
) -> None:
    """`run` waits for the container's init once the intermediate has exited: the launcher
    makes it a subreaper and says so in _SKIFF_RUNTIME_SUBREAPER (a caller's stale value is
    not passed on), so the Python side needs no C binding for it."""
    res = subprocess.run(
        [str(launcher), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={
            **os.environ,
            "LAUNCHER_TEST_SUBREAPER": "1",
            "_SKIFF_RUNTIME_SUBREAPER": "1",
            "SKIFF_RUNTIME_NO_CGROUP_PRIMING": "1",
        },
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == expected


PRIMER_SCRIPT = """
import os, sys, time
pid, _, fd = os.environ["_SKIFF_RUNTIME_PRIMER"].partition(":")
pid, fd = int(pid), int(fd)
started = time.monotonic()
time.sleep(0.05)
alive = os.waitpid(pid, os.WNOHANG) == (0, 0)  # still priming: its pipe is open
os.close(fd)  # what stop_priming does
os.waitpid(pid, 0)
print(alive, round(time.monotonic() - started, 3), flush=True)
"""

PIDNS_SCRIPT = """
import os
fd = os.environ.get("_SKIFF_RUNTIME_HOME_PIDNS")
r, w = os.pipe()
child = os.fork()
if child == 0:
    os.close(w)
    os.read(r, 1)
    os._exit(0)
mine = os.readlink("/proc/self/ns/pid")
print(fd is not None and os.readlink(f"/proc/self/fd/{fd}") == mine,
      os.readlink(f"/proc/{child}/ns/pid") != mine, flush=True)
os.close(w)
os.waitpid(child, 0)
"""


def test_priming_child_stops_when_the_runtime_closes_its_pipe(tmp_path: Path) -> None:
    """The launcher's child re-primes every 2 ms for up to 0.5 s; closing the pipe it polls
    (stop_priming) ends it at once."""
    exe = _launcher_with(tmp_path, PRIMER_SCRIPT)
    res = subprocess.run(
        [str(exe), "run", "x"], capture_output=True, text=True, timeout=30, env=dict(os.environ)
    )
    assert res.returncode == 0, res.stderr
    alive, elapsed = res.stdout.split()
    assert alive == "True"
    assert float(elapsed) < 0.4, elapsed  # not the 0.5 s deadline


@pytest.mark.parametrize(
    ("verb", "moved"), [("run", "True"), ("create", "True"), ("state", "False")]
)
def test_create_and_run_get_their_first_child_into_a_new_pid_namespace(
    tmp_path: Path, verb: str, moved: str
) -> None:
    """For create and run the launcher unshares the pid namespace for the runtime's children
    (the first is the container's init, prefork.py) and passes an fd of its own namespace."""
    exe = _launcher_with(tmp_path, PIDNS_SCRIPT)
    res = subprocess.run(
        [str(exe), verb, "x"], capture_output=True, text=True, timeout=30, env=dict(os.environ)
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [moved, moved]
