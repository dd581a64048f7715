"""Each namespace of config.json isolates: checked from inside a real container."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

Runtime = Any


def _run(runtime: Runtime, script: str, mutate: Any = None) -> tuple[int, str, str]:
    bundle = runtime.bundle(["sh", "-c", script], mutate)
    out = runtime("run", "--bundle", str(bundle), runtime.new_id())
    return out.returncode, out.stdout.decode(), out.stderr.decode()


def _add_ns(*kinds: str, **extra: Any) -> Any:
    def mutate(spec: dict[str, Any]) -> None:
        for kind in kinds:
            spec["linux"]["namespaces"].append({"type": kind})
        spec["linux"].update(extra)

    return mutate


def _userns(host_id: int) -> Any:
    """A new user namespace mapping 65536 ids from `host_id`. sysfs cannot be mounted in a
    user namespace that does not own the network namespace: /sys (and cgroups) are left out,
    the tests are about ids."""

    def mutate(spec: dict[str, Any]) -> None:
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": host_id, "size": 65536}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": host_id, "size": 65536}]
        spec["mounts"] = [
            m for m in spec["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")
        ]

    return mutate


def test_uts_pid_and_exit_code(runtime: Runtime) -> None:
    code, out, err = _run(runtime, "hostname; echo pid=$$; exit 7")
    assert code == 7, err
    assert out.split() == ["skiff", "pid=1"]


def test_every_namespace_differs_from_the_host(runtime: Runtime) -> None:
    kinds = ["ipc", "uts", "net", "mnt", "pid", "cgroup"]
    script = "; ".join(f"readlink /proc/self/ns/{k}" for k in kinds)
    code, out, err = _run(runtime, script)
    assert code == 0, err
    inside = out.split()
    host = [os.readlink(f"/proc/self/ns/{k}") for k in kinds]
    for kind, a, b in zip(kinds, inside, host, strict=True):
        assert a != b, f"{kind} namespace shared with host"


def test_network_namespace_has_only_loopback(runtime: Runtime) -> None:
    code, out, err = _run(runtime, "ls /sys/class/net")
    assert code == 0, err
    assert out.split() == ["lo"]


def _with_sys_admin(spec: dict[str, Any]) -> None:
    for kind in ("bounding", "effective", "permitted"):
        spec["process"]["capabilities"][kind].append("CAP_SYS_ADMIN")


def test_mount_namespace_changes_do_not_reach_host(runtime: Runtime) -> None:
    code, out, err = _run(
        runtime,
        "mount -t tmpfs none /tmp && grep -c ' /tmp ' /proc/self/mountinfo",
        _with_sys_admin,
    )
    assert code == 0, err
    assert out.strip() == "1"
    after = open("/proc/self/mountinfo").read()
    assert str(runtime.rootfs) not in after  # neither the rootfs bind nor anything under it


def test_ipc_namespace_isolates_queues(runtime: Runtime) -> None:
    if not shutil.which("ipcmk"):
        pytest.skip("ipcmk (util-linux) not installed")
    made = subprocess.run(["ipcmk", "-Q"], capture_output=True, text=True, check=True).stdout
    queue_id = made.strip().split()[-1]
    try:
        assert len(open("/proc/sysvipc/msg").read().splitlines()) >= 2
        code, out, err = _run(runtime, "wc -l < /proc/sysvipc/msg")
        assert code == 0, err
        assert out.strip() == "1"  # the header line only: the host queue is not visible
    finally:
        subprocess.run(["ipcrm", "-q", queue_id], check=False)


@pytest.fixture
def userns_rootfs(busybox_rootfs: Path) -> Iterator[Path]:
    """A rootfs copy whose parents a mapped (unprivileged on the host) root can traverse."""
    top = Path(tempfile.mkdtemp(prefix="skiff-userns-", dir="/tmp"))
    os.chmod(top, 0o755)
    try:
        shutil.copytree(busybox_rootfs, top / "rootfs", symlinks=True)
        yield top / "rootfs"
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_user_namespace_maps_ids(runtime: Runtime, userns_rootfs: Path) -> None:
    runtime.rootfs = userns_rootfs

    code, out, err = _run(
        runtime, "cat /proc/self/uid_map /proc/self/gid_map; id -u; sleep 0", _userns(100000)
    )
    assert code == 0, err
    lines = [line.split() for line in out.strip().splitlines()]
    assert lines[0] == ["0", "100000", "65536"]
    assert lines[1] == ["0", "100000", "65536"]
    assert lines[2] == ["0"]


def test_user_namespace_process_runs_as_mapped_host_uid(
    runtime: Runtime, userns_rootfs: Path
) -> None:
    runtime.rootfs = userns_rootfs

    bundle = runtime.bundle(["sleep", "30"], _userns(200000))
    cid = runtime.new_id()
    code, err = runtime.detached("run", "-d", "--bundle", str(bundle), cid)
    assert code == 0, err
    pid = runtime.state(cid)["pid"]
    status = open(f"/proc/{pid}/status").read()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["200000"] * 4
    # exec joins the user namespace first, then the rest
    out = runtime(
        "exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user"
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", "200000", "65536"]
    assert lines[2] == os.readlink(f"/proc/{pid}/ns/user")


def test_cgroup_namespace_root_is_the_container_cgroup(runtime: Runtime) -> None:
    code, out, err = _run(runtime, "cat /proc/self/cgroup")
    assert code == 0, err
    for line in out.strip().splitlines():
        assert line.split(":", 2)[2] == "/", line


def test_without_a_cgroup_namespace_the_process_starts_in_the_container_cgroup(
    runtime: Runtime,
) -> None:
    """The main process moves init into the cgroup from outside while init sets up: the
    container's process must never see a cgroup other than its own."""

    def mutate(spec: dict[str, Any]) -> None:
        spec["linux"]["namespaces"] = [
            ns for ns in spec["linux"]["namespaces"] if ns["type"] != "cgroup"
        ]

    bundle = runtime.bundle(["cat", "/proc/self/cgroup"], mutate)
    cid = runtime.new_id()
    out = runtime("run", "--bundle", str(bundle), cid)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().strip().splitlines()
    v1 = [line for line in lines if line.split(":", 2)[1]]
    assert v1, lines
    for line in v1:
        assert line.split(":", 2)[2].endswith(f"/{cid}"), line


def test_cgroup_namespace_in_a_user_namespace(runtime: Runtime, userns_rootfs: Path) -> None:
    """init unshares the cgroup namespace itself, once it is in its cgroup: in a new user
    namespace too (it is root there)."""
    runtime.rootfs = userns_rootfs

    code, out, err = _run(runtime, "cat /proc/self/cgroup; id -u", _userns(100000))
    assert code == 0, err
    *cgroups, uid = out.strip().splitlines()
    assert uid == "0"
    assert cgroups and all(line.split(":", 2)[2] == "/" for line in cgroups), cgroups


def test_join_pid_namespace_by_path(runtime: Runtime) -> None:
    """Not a case for the pre-init (pid 1 of a new pid namespace): an intermediate forks
    the process into the joined namespace, where the first container's sleep is pid 1."""
    first = runtime.new_id()
    code, err = runtime.detached("run", "-d", "-b", str(runtime.bundle(["sleep", "30"])), first)
    assert code == 0, err
    first_pid = runtime.state(first)["pid"]

    def mutate(spec: dict[str, Any]) -> None:
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] == "pid":
                ns["path"] = f"/proc/{first_pid}/ns/pid"

    code, out, err = _run(runtime, "echo $$; cat /proc/1/comm", mutate)
    assert code == 0, err
    pid, comm = out.split()
    assert pid != "1" and comm == "sleep"


def test_time_namespace_offsets_boottime(runtime: Runtime) -> None:
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("kernel has no time namespaces")
    host_uptime = float(open("/proc/uptime").read().split()[0])
    code, out, err = _run(
        runtime,
        "cut -d' ' -f1 /proc/uptime",
        _add_ns("time", timeOffsets={"boottime": {"secs": 86400 * 10, "nanosecs": 0}}),
    )
    assert code == 0, err
    assert float(out.strip()) >= host_uptime + 86400 * 10 - 5


def test_join_network_namespace_by_path(runtime: Runtime) -> None:
    if not shutil.which("ip"):
        pytest.skip("iproute2 not installed")
    name = f"skiff-rt-{os.getpid()}-{os.urandom(3).hex()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        path = f"/run/netns/{name}"
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)

        def mutate(spec: dict[str, Any]) -> None:
            for ns in spec["linux"]["namespaces"]:
                if ns["type"] == "network":
                    ns["path"] = path

        code, out, err = _run(
            runtime, "cat /sys/class/net/lo/operstate; readlink /proc/self/ns/net", mutate
        )
        assert code == 0, err
        lines = out.split()
        assert lines[0] == "unknown"  # lo is up: we are in the prepared namespace, not a new one
        assert lines[1] == f"net:[{os.stat(path).st_ino}]"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
