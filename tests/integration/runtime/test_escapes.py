"""No host fd and no host cwd reach the container (CVE-2019-5736, CVE-2024-21626)."""

from __future__ import annotations

import os
import subprocess
from typing import Any

Runtime = Any


def _fds_script() -> str:
    # one line per open fd of the container process: "<fd> <target>"
    return "for f in /proc/self/fd/*; do echo ${f##*/} $(readlink $f); done"


def test_inherited_fds_do_not_leak_into_the_container(runtime: Runtime) -> None:
    host_dir = os.open("/", os.O_RDONLY)  # inheritable: what a careless caller leaks
    host_file = os.open(runtime.binary, os.O_RDONLY)
    os.set_inheritable(host_dir, True)
    os.set_inheritable(host_file, True)
    try:
        bundle = runtime.bundle(["sh", "-c", _fds_script()])
        out = runtime("run", "-b", str(bundle), runtime.new_id(), pass_fds=(host_dir, host_file))
    finally:
        os.close(host_dir)
        os.close(host_file)
    assert out.returncode == 0, out.stderr
    fds = {int(line.split()[0]) for line in out.stdout.decode().splitlines()}
    # stdio plus the fd `readlink` loop itself may use for /proc/self/fd; never the leaked ones
    assert host_dir not in fds
    assert host_file not in fds
    assert "python" not in out.stdout.decode()
    assert "skiff-runtime" not in out.stdout.decode()


def test_preserve_fds_passes_exactly_those(runtime: Runtime, tmp_path: Any) -> None:
    shared = tmp_path / "shared.txt"
    shared.write_text("through fd 3\n")
    bundle = runtime.bundle(
        [
            "sh",
            "-c",
            "cat <&3; [ -e /proc/self/fd/3 ] && echo has-3; [ -e /proc/self/fd/4 ] || echo no-4",
        ]
    )
    command = (
        f'exec "{runtime.binary}" --root "{runtime.root}" run --preserve-fds 1 '
        f'-b "{bundle}" {runtime.new_id()} 3<"{shared}" 4<"{shared}"'
    )
    out = subprocess.run(["/bin/sh", "-c", command], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().split()
    assert lines[:3] == ["through", "fd", "3"]
    assert lines[3:] == ["has-3", "no-4"]  # beyond the preserved count: closed


def test_container_exe_is_the_container_binary(runtime: Runtime) -> None:
    cid = runtime.new_id()
    code, err = runtime.detached("run", "-d", "-b", str(runtime.bundle(["sleep", "60"])), cid)
    assert code == 0, err
    pid = runtime.state(cid)["pid"]
    exe = os.readlink(f"/proc/{pid}/exe")
    assert exe.endswith("/bin/busybox")
    assert "python" not in exe
    # init holds nothing but stdio: no fd to the runtime, its interpreter or the state dir
    fds = sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd"))
    assert fds == [0, 1, 2], [os.readlink(f"/proc/{pid}/fd/{n}") for n in fds]
    # an exec'd process likewise
    out = runtime("exec", cid, "sh", "-c", "readlink /proc/self/exe; ls /proc/self/fd | wc -l")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().split()
    assert lines[0] == "/bin/busybox"
    assert int(lines[1]) <= 4  # 0,1,2 and ls's own directory fd


def test_cwd_is_inside_the_container_even_from_a_leaked_host_dir(
    runtime: Runtime, tmp_path: Any
) -> None:
    secret = tmp_path / "host-secret"
    secret.mkdir()
    (secret / "file").write_text("host data")
    bundle = runtime.bundle(
        ["sh", "-c", "pwd; readlink /proc/self/cwd; ls"], lambda s: s["process"].update(cwd="/etc")
    )
    out = runtime("run", "-b", str(bundle), runtime.new_id(), cwd=str(secret))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().split()
    assert lines[:2] == ["/etc", "/etc"]
    assert "file" not in lines
    # and with the leaked dir as an inherited fd, /proc/self/fd/N cannot be used as cwd
    dirfd = os.open(secret, os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(dirfd, True)
    try:
        bundle = runtime.bundle(
            ["true"], lambda s: s["process"].update(cwd=f"/proc/self/fd/{dirfd}")
        )
        out = runtime("run", "-b", str(bundle), runtime.new_id(), pass_fds=(dirfd,))
    finally:
        os.close(dirfd)
    assert out.returncode != 0
    assert b"host data" not in out.stdout


def test_exec_cwd_cannot_escape(runtime: Runtime) -> None:
    cid = runtime.new_id()
    code, err = runtime.detached("run", "-d", "-b", str(runtime.bundle(["sleep", "60"])), cid)
    assert code == 0, err
    out = runtime("exec", "--cwd", "/", cid, "sh", "-c", "readlink /proc/self/cwd; ls /")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().split()
    assert lines[0] == "/"
    assert "linuxrc" in lines  # the busybox rootfs, not the host's /
    assert subprocess.run(["true"]).returncode == 0
