"""skiff.runtime.rootfs: the exact mount sequence of a container start, recorded without root."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from skiff.errors import FailedPrecondition, InvalidArgument, NotImplementedYet
from skiff.linux.mount import (
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SLAVE,
    MS_STRICTATIME,
    RecordingMountOps,
)
from skiff.runtime.rootfs import prepare_rootfs, validate_sysctls

SECURE = MS_NOSUID | MS_NODEV | MS_NOEXEC

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PROC_CGROUP = "4:memory:/skiff/c1\n3:cpu,cpuacct:/skiff/c1\n1:name=systemd:/user.slice\n0::/\n"
CGROUP_DIRS = (
    "/sys/fs/cgroup/cpu,cpuacct/skiff/c1",
    "/sys/fs/cgroup/memory/skiff/c1",
    "/sys/fs/cgroup/systemd/user.slice",
)


def make_ops(*, uid_map: str = "0 0 4294967295\n", mountinfo: str = MOUNTINFO) -> RecordingMountOps:
    return RecordingMountOps(
        kinds=dict.fromkeys(CGROUP_DIRS, "dir"),
        files={
            "/proc/self/mountinfo": mountinfo,
            "/proc/self/cgroup": PROC_CGROUP,
            "/proc/self/uid_map": uid_map,
            "/proc/filesystems": "nodev\tproc\nnodev\ttmpfs\n\text4\nnodev\toverlay\n",
        },
    )


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    for d in ("proc/acpi", "proc/sys", "sys", "dev", "etc"):
        (root / d).mkdir(parents=True)
    (root / "proc" / "keys").write_text("")
    (tmp_path / "data").mkdir()
    return tmp_path


def docker_like(bundle: Path, **linux: Any) -> dict[str, Any]:
    return {
        "root": {"path": "rootfs", "readonly": True},
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
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
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
                "destination": "/data",
                "type": "bind",
                "source": "data",
                "options": ["rbind", "ro", "rprivate"],
            },
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/keys", "/proc/missing"],
            "readonlyPaths": ["/proc/sys", "/proc/nothere"],
            **linux,
        },
    }


def test_docker_like_sequence(bundle: Path) -> None:
    ops = make_ops()
    prepare_rootfs(docker_like(bundle), str(bundle), ops=ops)
    r = str(bundle / "rootfs")
    cg = f"{r}/sys/fs/cgroup"
    ro_bind = MS_BIND | MS_REMOUNT | MS_RDONLY | SECURE
    assert ops.mounts() == [
        ("mount", "", "/", "", MS_SLAVE | MS_REC, ""),
        ("mount", "", "/", "", MS_PRIVATE, ""),  # the rootfs's parent mount was shared
        ("mount", r, r, "bind", MS_BIND | MS_REC, ""),
        ("mount", "proc", f"{r}/proc", "proc", SECURE, ""),
        ("mount", "tmpfs", f"{r}/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"),
        (
            "mount",
            "devpts",
            f"{r}/dev/pts",
            "devpts",
            MS_NOSUID | MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5",
        ),
        ("mount", "shm", f"{r}/dev/shm", "tmpfs", SECURE, "mode=1777,size=67108864"),
        ("mount", "mqueue", f"{r}/dev/mqueue", "mqueue", SECURE, ""),
        ("mount", "sysfs", f"{r}/sys", "sysfs", SECURE | MS_RDONLY, ""),
        ("mount", "tmpfs", cg, "tmpfs", SECURE, "mode=755"),
        ("mount", CGROUP_DIRS[0], f"{cg}/cpu,cpuacct", "", MS_BIND | MS_REC, ""),
        ("mount", "", f"{cg}/cpu,cpuacct", "", ro_bind, ""),
        ("mount", CGROUP_DIRS[1], f"{cg}/memory", "", MS_BIND | MS_REC, ""),
        ("mount", "", f"{cg}/memory", "", ro_bind, ""),
        ("mount", CGROUP_DIRS[2], f"{cg}/systemd", "", MS_BIND | MS_REC, ""),
        ("mount", "", f"{cg}/systemd", "", ro_bind, ""),
        ("mount", str(bundle / "data"), f"{r}/data", "", MS_BIND | MS_REC, ""),
        ("mount", "", f"{r}/data", "", MS_BIND | MS_REMOUNT | MS_RDONLY, ""),
        ("mount", "", f"{r}/data", "", MS_PRIVATE | MS_REC, ""),
        ("pivot_root", ".", "."),
        ("mount", "", ".", "", MS_SLAVE | MS_REC, ""),
        ("umount2", ".", MNT_DETACH),
        ("mount", "/proc/sys", "/proc/sys", "", MS_BIND | MS_REC, ""),
        ("mount", "", "/proc/sys", "", ro_bind, ""),
        ("mount", "tmpfs", "/proc/acpi", "tmpfs", MS_RDONLY, ""),  # a masked directory
        ("mount", "/dev/null", "/proc/keys", "", MS_BIND, ""),  # a masked file
        ("mount", "", "/", "", MS_BIND | MS_REMOUNT | MS_RDONLY, ""),  # root.readonly
    ]
    # co-mounted controllers get their symlinks; /dev gets its nodes and links before pivot_root
    assert ("symlink", "cpu,cpuacct", f"{cg}/cpuacct") in ops.calls
    assert ("mknod", f"{r}/dev/null", 0o20666, 0x103) in ops.calls
    assert ("symlink", "pts/ptmx", f"{r}/dev/ptmx") in ops.calls
    assert ops.calls.index(("symlink", "pts/ptmx", f"{r}/dev/ptmx")) < ops.calls.index(
        ("pivot_root", ".", ".")
    )
    assert ops.calls[ops.calls.index(("pivot_root", ".", ".")) - 1] == ("fchdir", r)


def test_user_namespace_binds_devices_and_sys(bundle: Path) -> None:
    spec = docker_like(bundle)
    spec["linux"]["namespaces"] = [{"type": t} for t in ("user", "pid", "mount")]  # no new netns
    ops = make_ops()
    prepare_rootfs(spec, str(bundle), ops=ops)
    r = str(bundle / "rootfs")
    mounts = ops.mounts()
    assert ("mount", "/sys", f"{r}/sys", "", MS_BIND | MS_REC, "") in mounts
    assert ("mount", "/dev/null", f"{r}/dev/null", "", MS_BIND, "") in mounts
    assert not [c for c in ops.calls if c[0] == "mknod"]
    assert (bundle / "rootfs" / "dev" / "null").is_file()  # the empty bind target


def test_detected_user_namespace_from_uid_map(bundle: Path) -> None:
    ops = make_ops(uid_map="0 100000 65536\n")
    prepare_rootfs(docker_like(bundle), str(bundle), ops=ops)
    assert not [c for c in ops.calls if c[0] == "mknod"]


def test_cgroup_namespace_mounts_cgroupfs(bundle: Path) -> None:
    spec = docker_like(bundle)
    spec["linux"]["namespaces"].append({"type": "cgroup"})
    ops = make_ops()
    prepare_rootfs(spec, str(bundle), ops=ops)
    cg = str(bundle / "rootfs" / "sys" / "fs" / "cgroup")
    assert (
        "mount",
        "cgroup",
        f"{cg}/memory",
        "cgroup",
        MS_RDONLY | SECURE,
        "memory",
    ) in ops.mounts()
    assert (
        "mount",
        "cgroup",
        f"{cg}/systemd",
        "cgroup",
        MS_RDONLY | SECURE,
        "name=systemd",
    ) in ops.mounts()


def test_cgroup_v2_binds_own_cgroup_without_cgroupns(bundle: Path) -> None:
    v2 = "27 1 254:0 / / rw - ext4 /dev/vda rw\n31 23 0:28 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    ops = make_ops(mountinfo=v2)
    ops.files["/proc/self/cgroup"] = "0::/skiff/c1\n"
    ops.kinds["/sys/fs/cgroup/skiff/c1"] = "dir"
    prepare_rootfs(docker_like(bundle), str(bundle), ops=ops)
    cg = str(bundle / "rootfs" / "sys" / "fs" / "cgroup")
    assert ("mount", "/sys/fs/cgroup/skiff/c1", cg, "", MS_BIND | MS_REC, "") in ops.mounts()


def test_symlink_target_lands_inside_rootfs(bundle: Path) -> None:
    (bundle / "rootfs" / "evil").symlink_to("/etc")
    (bundle / "rootfs" / "up").symlink_to("../../../../../../../tmp")
    spec = {
        "root": {"path": "rootfs"},
        "mounts": [
            {"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/up/y", "type": "tmpfs", "source": "tmpfs"},
        ],
    }
    ops = make_ops()
    prepare_rootfs(spec, str(bundle), ops=ops)
    r = str(bundle / "rootfs")
    assert ("mount", "tmpfs", f"{r}/etc/x", "tmpfs", 0, "") in ops.mounts()
    assert ("mount", "tmpfs", f"{r}/tmp/y", "tmpfs", 0, "") in ops.mounts()


def test_tmpcopyup_and_console_and_sysctl(bundle: Path) -> None:
    spec: dict[str, Any] = {
        "root": {"path": "rootfs"},
        "process": {"cwd": "/work/dir"},
        "mounts": [
            {
                "destination": "/etc",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["tmpcopyup", "ro"],
            }
        ],
        "linux": {"namespaces": [{"type": "network"}], "sysctl": {"net.ipv4.ip_forward": "1"}},
    }
    ops = make_ops()
    prepare_rootfs(spec, str(bundle), console_slave="/dev/pts/7", ops=ops)
    r = str(bundle / "rootfs")
    assert ops.calls[ops.calls.index(("mount", "tmpfs", f"{r}/etc", "tmpfs", 0, "")) + 1] == (
        "copy_up",
        f"{r}/etc",
        f"{r}/etc",
    )
    assert ("mount", "tmpfs", f"{r}/etc", "tmpfs", MS_RDONLY | MS_REMOUNT, "") in ops.mounts()
    assert ("mount", "/dev/pts/7", f"{r}/dev/console", "", MS_BIND, "") in ops.mounts()
    assert ("write_file", "/proc/sys/net/ipv4/ip_forward", "1") in ops.calls
    assert (bundle / "rootfs" / "work" / "dir").is_dir()


def test_error_names_step_and_object(bundle: Path) -> None:
    ops = make_ops()
    ops.fail[("mount", str(bundle / "rootfs" / "proc"))] = errno.EPERM
    with pytest.raises(FailedPrecondition) as info:
        prepare_rootfs(docker_like(bundle), str(bundle), ops=ops)
    assert str(info.value) == 'mount "proc" to rootfs at "/proc": EPERM: Operation not permitted'


def test_unknown_mount_type_names_the_entry(bundle: Path) -> None:
    spec = {
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/x", "type": "nosuchfs", "source": "x"}],
    }
    with pytest.raises(InvalidArgument, match=r"mounts\[0\]: unknown mount type 'nosuchfs'"):
        prepare_rootfs(spec, str(bundle), ops=make_ops())


def test_mounts_inside_proc_are_refused(bundle: Path) -> None:
    spec = {
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc/self/x", "type": "tmpfs", "source": "t"}],
    }
    with pytest.raises(InvalidArgument, match="inside /proc"):
        prepare_rootfs(spec, str(bundle), ops=make_ops())


def test_missing_bind_source(bundle: Path) -> None:
    spec = {
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/x", "type": "bind", "source": "/no/such/src"}],
    }
    with pytest.raises(
        Exception, match=r'mount "/no/such/src" to rootfs at "/x": bind source .*ENOENT'
    ):
        prepare_rootfs(spec, str(bundle), ops=make_ops())


@pytest.mark.parametrize(
    ("sysctl", "namespaces", "message"),
    [
        ({"kernel.shmmax": "1"}, ["ipc"], None),
        ({"fs.mqueue.msg_max": "1"}, ["ipc"], None),
        ({"net.ipv4.ip_forward": "1"}, ["network"], None),
        ({"kernel.hostname": "x"}, ["uts"], None),
        ({"kernel.shmmax": "1"}, [], "needs a new ipc namespace"),
        ({"net.core.somaxconn": "1"}, ["ipc"], "needs a new network namespace"),
        ({"vm.swappiness": "1"}, ["ipc", "network", "uts"], "not in a separate kernel namespace"),
    ],
)
def test_validate_sysctls(
    sysctl: dict[str, str], namespaces: list[str], message: str | None
) -> None:
    spec = {"linux": {"sysctl": sysctl, "namespaces": [{"type": t} for t in namespaces]}}
    if message is None:
        validate_sysctls(spec)
    else:
        with pytest.raises(InvalidArgument, match=message):
            validate_sysctls(spec)


def test_bind_dev_skips_device_setup(bundle: Path) -> None:
    spec = {
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}],
    }
    ops = make_ops()
    prepare_rootfs(spec, str(bundle), ops=ops)
    assert not [c for c in ops.calls if c[0] in ("mknod", "symlink")]


def test_recursive_readonly_bind(bundle: Path) -> None:
    spec = {
        "root": {"path": "rootfs"},
        "mounts": [
            {
                "destination": "/data",
                "type": "bind",
                "source": "data",
                "options": ["rbind", "rro", "nosuid"],
            }
        ],
    }
    ops = make_ops()
    prepare_rootfs(spec, str(bundle), ops=ops)
    dest = str(bundle / "rootfs" / "data")
    i = ops.mounts().index(("mount", str(bundle / "data"), dest, "", MS_BIND | MS_REC, ""))
    assert ops.mounts()[i + 1 : i + 3] == [
        ("mount", "", dest, "", MS_BIND | MS_REMOUNT | MS_NOSUID, ""),
        ("mount_setattr", dest, 0x1, 0),
    ]


def test_devpts_without_mapped_tty_group_retries_without_gid(bundle: Path) -> None:
    spec = docker_like(bundle)
    ops = make_ops()
    pts = str(bundle / "rootfs" / "dev" / "pts")
    ops.fail[("mount", pts)] = errno.EINVAL
    prepare_rootfs(spec, str(bundle), ops=ops)
    devpts = [c for c in ops.mounts() if c[2] == pts]
    assert [c[5] for c in devpts] == [
        "newinstance,ptmxmode=0666,mode=0620,gid=5",
        "newinstance,ptmxmode=0666,mode=0620",
    ]


def test_user_namespace_joined_netns_falls_back_to_binding_sys(bundle: Path) -> None:
    spec = docker_like(bundle)
    spec["linux"]["namespaces"] = [
        {"type": "user"},
        {"type": "mount"},
        {"type": "network", "path": "/run/netns/x"},
    ]
    ops = make_ops()
    r = str(bundle / "rootfs")
    ops.fail[("mount", f"{r}/sys")] = errno.EPERM
    prepare_rootfs(spec, str(bundle), ops=ops)
    sys_mounts = [c for c in ops.mounts() if c[2] == f"{r}/sys"]
    assert sys_mounts[:2] == [
        ("mount", "sysfs", f"{r}/sys", "sysfs", SECURE | MS_RDONLY, ""),
        ("mount", "/sys", f"{r}/sys", "", MS_BIND | MS_REC, ""),
    ]


def test_idmapped_mounts_are_refused_not_faked(bundle: Path) -> None:
    spec = {
        "root": {"path": "rootfs"},
        "mounts": [
            {"destination": "/d", "type": "bind", "source": "data", "options": ["rbind", "idmap"]}
        ],
    }
    with pytest.raises(NotImplementedYet, match=r"mounts\[0\]: id-mapped mounts"):
        prepare_rootfs(spec, str(bundle), ops=make_ops())


def test_refuses_to_run_in_the_hosts_mount_namespace(bundle: Path) -> None:
    ops = make_ops()
    ops.files["/proc/self/ns/mnt"] = ops.files["/proc/1/ns/mnt"] = "mnt:[4026531841]"
    with pytest.raises(FailedPrecondition, match="host's mount namespace"):
        prepare_rootfs(docker_like(bundle), str(bundle), ops=ops)
    assert ops.calls == []


def test_namespace_check_skipped_when_pid1_is_out_of_reach(bundle: Path) -> None:
    class Unreadable(RecordingMountOps):
        def readlink(self, path: str) -> str:
            if path == "/proc/1/ns/mnt":
                raise PermissionError(errno.EACCES, "Permission denied", path)
            return super().readlink(path)

    ops = Unreadable(kinds=make_ops().kinds, files=make_ops().files)
    prepare_rootfs(docker_like(bundle), str(bundle), ops=ops)
    assert ("pivot_root", ".", ".") in ops.calls


def test_with_a_cgroup_wait_the_cgroup_mount_comes_after_dev(bundle: Path) -> None:
    """init waits to be in its cgroup before a cgroup mount (it shows init's own cgroups):
    /dev is set up meanwhile, when no later mount overlaps the cgroup mount's destination."""
    ops = make_ops()
    waits: list[int] = []
    prepare_rootfs(
        docker_like(bundle),
        str(bundle),
        ops=ops,
        before_cgroup_mount=lambda: waits.append(len(ops.calls)),
    )
    r = str(bundle / "rootfs")
    cg = f"{r}/sys/fs/cgroup"
    tmpfs_on_cg = ops.calls.index(("mount", "tmpfs", cg, "tmpfs", SECURE, "mode=755"))
    data_bind = ops.calls.index(
        ("mount", str(bundle / "data"), f"{r}/data", "", MS_BIND | MS_REC, "")
    )
    dev_null = ops.calls.index(("mknod", f"{r}/dev/null", 0o20666, 0x103))
    assert (
        data_bind < dev_null < waits[0] <= tmpfs_on_cg < ops.calls.index(("pivot_root", ".", "."))
    )


def test_a_cgroup_mount_something_later_sits_in_keeps_its_place(bundle: Path) -> None:
    spec = docker_like(bundle)
    spec["mounts"].append(
        {"destination": "/sys/fs/cgroup/extra", "type": "tmpfs", "source": "tmpfs", "options": []}
    )
    ops = make_ops()
    prepare_rootfs(spec, str(bundle), ops=ops, before_cgroup_mount=lambda: None)
    r = str(bundle / "rootfs")
    cg = f"{r}/sys/fs/cgroup"
    tmpfs_on_cg = ops.calls.index(("mount", "tmpfs", cg, "tmpfs", SECURE, "mode=755"))
    data_bind = ops.calls.index(
        ("mount", str(bundle / "data"), f"{r}/data", "", MS_BIND | MS_REC, "")
    )
    assert tmpfs_on_cg < data_bind
