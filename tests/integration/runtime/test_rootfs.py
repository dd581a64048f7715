"""prepare_rootfs on the real kernel: a forked child in new namespaces sets up a busybox rootfs,
pivots into it and execs busybox, which reports what the container sees."""

from __future__ import annotations

import importlib.util
import os
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from skiff.errors import FailedPrecondition
from skiff.linux.mount import RecordingMountOps
from skiff.runtime.rootfs import prepare_rootfs


def _load_nsutil() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_nsutil", Path(__file__).with_name("_nsutil.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ns = _load_nsutil()

MASKED = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def docker_like(
    *, readonly_root: bool, extra_mounts: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": readonly_root},
        "mounts": [
            {
                "destination": "/proc",
                "type": "proc",
                "source": "proc",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": [
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["ro", "nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
            },
            *(extra_mounts or []),
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "devices": [
                {"path": "/dev/skiff-fifo", "type": "p", "fileMode": 0o640, "uid": 7, "gid": 8}
            ],
            "sysctl": {"net.ipv4.ip_forward": "1"},
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY,
        },
    }


def run_container(bundle: Path, spec: dict[str, Any], script: str) -> tuple[int, str]:
    def init() -> None:
        prepare_rootfs(spec, str(bundle))
        os.execv("/bin/busybox", ["sh", "-c", script])

    return ns.run_in_namespaces(init)  # type: ignore[no-any-return]


def leaked(before: list[str], bundle: Path, *extra: str) -> list[str]:
    """Host mounts that appeared since `before` at or below the bundle (or at `extra` paths).

    Only those: other tests running at the same time may mount elsewhere on the host.
    """
    places = (str(bundle), *extra)
    return [
        line
        for line in ns.mountinfo_lines()
        if line not in before
        and any(line.split()[2] == p or line.split()[2].startswith(p + "/") for p in places)
    ]


def report(output: str) -> dict[str, str]:
    """Lines "key=value" printed by the script."""
    return dict(
        line.split("=", 1)
        for line in output.splitlines()
        if "=" in line and not line.startswith(" ")
    )


SCRIPT = r"""
echo "pid=$$"
echo "proc=$(grep -c ' /proc proc ' /proc/self/mounts)"
echo "keys=$(cat /proc/keys | wc -c)"
echo "timer_list=$(cat /proc/timer_list | wc -c)"
echo "firmware=$(ls -A /sys/firmware | wc -l)"
echo "procsys=$(grep ' /proc/sys ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1)"
if echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null; then echo procsys_write=ok; else echo procsys_write=refused; fi
echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
if touch /root-write-test 2>/dev/null; then echo root_write=ok; else echo root_write=refused; fi
if touch /dev/shm/x 2>/dev/null; then echo shm_write=ok; else echo shm_write=refused; fi
for d in null zero full random urandom tty; do echo "dev_$d=$(stat -c '%F %t:%T %a %u:%g' /dev/$d)"; done
echo "dev_fifo=$(stat -c '%F %a %u:%g' /dev/skiff-fifo)"
echo "dev_ptmx=$(readlink /dev/ptmx)"
echo "dev_fd=$(readlink /dev/fd)"
echo "dev_stdout=$(readlink /dev/stdout)"
echo "cgroup=$(ls /sys/fs/cgroup | tr '\n' ' ')"
echo "null_read=$(head -c 5 /dev/zero | wc -c)"
echo "marker=$(cat /etc/MARKER 2>&1)"
"""


def test_docker_like_container(fresh_busybox_rootfs: Path) -> None:
    bundle = fresh_busybox_rootfs.parent
    name = f"skiff-test-{uuid.uuid4().hex[:12]}"
    (bundle / "marker").write_text("from-the-bind\n")
    # a mount target that is a symlink pointing at the host's /etc: must land in the rootfs's /etc
    (fresh_busybox_rootfs / "evil").symlink_to("/etc")
    extra = [
        {
            "destination": f"/evil/{name}",
            "type": "bind",
            "source": "marker",
            "options": ["bind", "ro"],
        }
    ]
    script = SCRIPT.replace("/etc/MARKER", f"/etc/{name}")
    before = ns.mountinfo_lines()
    code, output = run_container(
        bundle, docker_like(readonly_root=True, extra_mounts=extra), script
    )
    assert code == 0, output
    seen = report(output)
    assert seen["pid"] == "1"
    assert seen["proc"] == "1"
    assert seen["keys"] == "0" and seen["timer_list"] == "0" and seen["firmware"] == "0"
    assert seen["procsys"] == "ro" and seen["procsys_write"] == "refused"
    assert seen["ip_forward"] == "1"
    assert seen["root_write"] == "refused"
    assert seen["shm_write"] == "ok"
    majors = {
        "null": "1:3",
        "zero": "1:5",
        "full": "1:7",
        "random": "1:8",
        "urandom": "1:9",
        "tty": "5:0",
    }
    for dev, numbers in majors.items():
        assert seen[f"dev_{dev}"] == f"character special file {numbers} 666 0:0", dev
    assert seen["dev_fifo"] == "fifo 640 7:8"
    assert seen["dev_ptmx"] == "pts/ptmx"
    assert seen["dev_fd"] == "/proc/self/fd" and seen["dev_stdout"] == "/proc/self/fd/1"
    assert "memory" in seen["cgroup"].split()
    assert seen["null_read"] == "5"
    assert seen["marker"] == "from-the-bind"
    assert not os.path.lexists(f"/etc/{name}")  # the host's /etc is untouched
    assert (fresh_busybox_rootfs / "etc" / name).is_file()  # the empty bind target, inside
    assert leaked(before, bundle, "/etc", "/proc", "/sys", "/dev") == []  # nothing left on the host


def test_writable_root_and_tmpcopyup(fresh_busybox_rootfs: Path) -> None:
    bundle = fresh_busybox_rootfs.parent
    (fresh_busybox_rootfs / "etc" / "copied").write_text("kept\n")
    extra = [
        {
            "destination": "/etc",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["tmpcopyup", "mode=755"],
        }
    ]
    script = (
        'echo "copied=$(cat /etc/copied)"; echo "passwd=$(head -1 /etc/passwd)"; '
        'echo "etc_fs=$(grep " /etc " /proc/self/mounts | cut -d" " -f3)"; '
        "touch /etc/new && touch /written && echo write=ok"
    )
    before = ns.mountinfo_lines()
    code, output = run_container(
        bundle, docker_like(readonly_root=False, extra_mounts=extra), script
    )
    assert code == 0, output
    seen = report(output)
    assert seen["copied"] == "kept" and seen["passwd"].startswith("root:")
    assert seen["etc_fs"] == "tmpfs" and seen["write"] == "ok"
    assert (fresh_busybox_rootfs / "written").exists()
    assert not (fresh_busybox_rootfs / "etc" / "new").exists()  # written to the tmpfs
    assert leaked(before, bundle, "/etc", "/proc", "/sys", "/dev") == []


def test_failure_is_reported_and_leaves_nothing(fresh_busybox_rootfs: Path) -> None:
    bundle = fresh_busybox_rootfs.parent
    spec = docker_like(
        readonly_root=False,
        extra_mounts=[{"destination": "/x", "type": "bind", "source": "/no/such/skiff/source"}],
    )
    before = ns.mountinfo_lines()
    code, output = run_container(bundle, spec, "true")
    assert code != 0
    assert 'mount "/no/such/skiff/source" to rootfs at "/x"' in output
    assert leaked(before, bundle, "/etc", "/proc", "/sys", "/dev") == []


@pytest.mark.parametrize("target", ["/proc", "/sys"])
def test_proc_and_sys_refuse_a_file_target(fresh_busybox_rootfs: Path, target: str) -> None:
    bundle = fresh_busybox_rootfs.parent
    os.rmdir(fresh_busybox_rootfs / target.lstrip("/"))
    (fresh_busybox_rootfs / target.lstrip("/")).write_text("")
    code, output = run_container(bundle, docker_like(readonly_root=False), "true")
    assert code != 0
    assert "is not a directory" in output


def test_user_namespace_container(fresh_busybox_rootfs: Path) -> None:
    """In a new user namespace mknod is refused: devices are bound from the host; /sys is sysfs
    (the container has its own network namespace); ro remounts keep the locked flags."""
    bundle = fresh_busybox_rootfs.parent
    spec = docker_like(readonly_root=True)
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["devices"] = []
    script = (
        'echo "uid_map=$(cat /proc/self/uid_map | tr -s " ")"; '
        'echo "null=$(stat -c "%F %t:%T" /dev/null)"; '
        'echo "null_mount=$(grep -c " /dev/null " /proc/self/mounts)"; '
        'echo "sys=$(grep " /sys " /proc/self/mounts | cut -d" " -f3)"; '
        "if touch /x 2>/dev/null; then echo root_write=ok; else echo root_write=refused; fi; "
        'echo "keys=$(cat /proc/keys | wc -c)"'
    )

    def init() -> None:
        for name, content in (("uid_map", "0 0 1"), ("setgroups", "deny"), ("gid_map", "0 0 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(content)
        prepare_rootfs(spec, str(bundle))
        os.execv("/bin/busybox", ["sh", "-c", script])

    before = ns.mountinfo_lines()
    code, output = ns.run_in_namespaces(init, ns.CONTAINER_FLAGS | ns.CLONE_NEWUSER)
    assert code == 0, output
    seen = report(output)
    assert seen["uid_map"].split() == ["0", "0", "1"]
    assert seen["null"] == "character special file 1:3"
    assert seen["null_mount"] == "1"  # a bind of the host's node, not a mknod
    assert seen["sys"] == "sysfs"
    assert seen["root_write"] == "refused"
    assert seen["keys"] == "0"
    assert leaked(before, bundle, "/etc", "/proc", "/sys", "/dev") == []


def test_refuses_the_hosts_mount_namespace(fresh_busybox_rootfs: Path) -> None:
    """The real namespace check, with mounts only recorded: were it broken, nothing happens."""
    try:
        os.readlink("/proc/1/ns/mnt")
    except PermissionError:
        pytest.skip("/proc/1/ns/mnt is unreadable here (EACCES): the check cannot be made")

    class RealNamespaces(RecordingMountOps):
        def readlink(self, path: str) -> str:
            return os.readlink(path)

    ops = RealNamespaces()
    with pytest.raises(FailedPrecondition, match="host's mount namespace"):
        prepare_rootfs(docker_like(readonly_root=False), str(fresh_busybox_rootfs.parent), ops=ops)
    assert ops.calls == []
