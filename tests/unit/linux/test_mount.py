"""skiff.linux.mount: option parsing, mountinfo, and mount sequences recorded without root."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from skiff.errors import FailedPrecondition, NotImplementedYet
from skiff.linux import mount as m
from skiff.types.mount import Mount


@pytest.mark.parametrize(
    ("options", "flags", "propagation", "data"),
    [
        ([], 0, 0, ""),
        (["ro"], m.MS_RDONLY, 0, ""),
        (["ro", "rw"], 0, 0, ""),
        (["nosuid", "nodev", "noexec"], m.MS_NOSUID | m.MS_NODEV | m.MS_NOEXEC, 0, ""),
        (["nosuid", "suid", "dev", "exec"], 0, 0, ""),
        (["sync", "dirsync", "remount", "mand"], 0x10 | 0x80 | 0x20 | 0x40, 0, ""),
        (["sync", "async"], 0, 0, ""),
        (["noatime", "nodiratime"], m.MS_NOATIME | m.MS_NODIRATIME, 0, ""),
        (["noatime", "atime"], 0, 0, ""),
        (["relatime", "norelatime", "strictatime"], m.MS_STRICTATIME, 0, ""),
        (["bind"], m.MS_BIND, 0, ""),
        (["rbind"], m.MS_BIND | m.MS_REC, 0, ""),
        (["nosymfollow"], m.MS_NOSYMFOLLOW, 0, ""),
        (["private"], 0, m.MS_PRIVATE, ""),
        (["rprivate"], 0, m.MS_PRIVATE | m.MS_REC, ""),
        (["shared"], 0, m.MS_SHARED, ""),
        (["rshared"], 0, m.MS_SHARED | m.MS_REC, ""),
        (["slave"], 0, m.MS_SLAVE, ""),
        (["rslave"], 0, m.MS_SLAVE | m.MS_REC, ""),
        (["unbindable"], 0, m.MS_UNBINDABLE, ""),
        (["runbindable"], 0, m.MS_UNBINDABLE | m.MS_REC, ""),
        (["tmpcopyup", "mode=755", "size=64m"], 0, 0, "mode=755,size=64m"),
        (
            ["ro", "lowerdir=/a:/b", "upperdir=/u", "workdir=/w"],
            m.MS_RDONLY,
            0,
            "lowerdir=/a:/b,upperdir=/u,workdir=/w",
        ),
    ],
)
def test_parse_options(options: list[str], flags: int, propagation: int, data: str) -> None:
    assert m.parse_options(options) == (flags, propagation, data)


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
90 27 0:50 / /tmp/ctr rw - overlay overlay rw,lowerdir=/l
91 90 0:51 / /tmp/ctr/dev rw - tmpfs tmpfs rw
92 91 0:52 / /tmp/ctr/dev/pts rw - devpts devpts rw
93 90 0:53 / /tmp/ctr/with\\040space rw master:3 - tmpfs tmpfs rw
94 27 0:54 / /tmp/ctr2 rw - tmpfs tmpfs rw
"""


def test_parse_mountinfo() -> None:
    entries = m.parse_mountinfo(MOUNTINFO)
    assert entries[1].mountpoint == "/" and entries[1].optional == ("shared:1",)
    assert entries[2].fstype == "overlay" and entries[2].super_options == "rw,lowerdir=/l"
    assert entries[5].mountpoint == "/tmp/ctr/with space"
    assert entries[5].optional == ("master:3",)


def test_mounts_under_is_deepest_first_and_exact() -> None:
    assert m.mounts_under("/tmp/ctr", MOUNTINFO) == [
        "/tmp/ctr/dev/pts",
        "/tmp/ctr/with space",
        "/tmp/ctr/dev",
        "/tmp/ctr",
    ]


def test_mount_all_overlay_and_binds(tmp_path: Path) -> None:
    ops = m.RecordingMountOps()
    (tmp_path / "sub").mkdir()
    mounts = [
        Mount("overlay", "overlay", ("lowerdir=/l2:/l1", "upperdir=/u", "workdir=/w")),
        Mount("bind", "/src", ("rbind", "ro"), target="sub"),
        Mount("tmpfs", "tmpfs", ("size=1m", "rprivate"), target="sub"),
    ]
    m.mount_all(mounts, str(tmp_path), ops=ops)
    sub = str(tmp_path / "sub")
    assert ops.mounts() == [
        (
            "mount",
            "overlay",
            str(tmp_path),
            "overlay",
            0,
            "lowerdir=/l2:/l1,upperdir=/u,workdir=/w",
        ),
        ("mount", "/src", sub, "", m.MS_BIND | m.MS_REC, ""),
        ("mount", "", sub, "", m.MS_BIND | m.MS_REMOUNT | m.MS_RDONLY, ""),
        ("mount", "tmpfs", sub, "tmpfs", 0, "size=1m"),
        ("mount", "", sub, "", m.MS_PRIVATE | m.MS_REC, ""),
    ]


def test_mount_all_undoes_on_failure(tmp_path: Path) -> None:
    ops = m.RecordingMountOps(fail={("mount", "/bad"): errno.EPERM})
    mounts = [Mount("tmpfs", "tmpfs"), Mount("bind", "/bad", ("bind",))]
    with pytest.raises(FailedPrecondition, match=r'mounts\[1\]: mount bind "/bad" at .*EPERM'):
        m.mount_all(mounts, str(tmp_path), ops=ops)
    assert ops.mounts()[-1] == ("umount2", str(tmp_path), m.MNT_DETACH)


def test_mount_all_uses_the_new_mount_api_for_long_overlay_options(tmp_path: Path) -> None:
    layers = [f"/var/lib/skiff/snapshots/{i}/fs" for i in range(200)]
    options = (f"lowerdir={':'.join(layers)}", "upperdir=/u", "workdir=/w", "userxattr", "ro")
    ops = m.RecordingMountOps()
    m.mount_all([Mount("overlay", "overlay", options)], str(tmp_path), ops=ops)
    params = (
        *(("lowerdir+", layer) for layer in layers),
        ("upperdir", "/u"),
        ("workdir", "/w"),
        ("userxattr", None),
    )
    assert ops.mounts() == [("mount_fs", "overlay", "overlay", params, str(tmp_path), m.MS_RDONLY)]


def test_mount_all_refuses_overlong_data_elsewhere(tmp_path: Path) -> None:
    with pytest.raises(NotImplementedYet, match="limit for mount"):
        m.mount_all(
            [Mount("tmpfs", "tmpfs", ("x" * 5000,))], str(tmp_path), ops=m.RecordingMountOps()
        )


def test_bind_remount_retries_with_locked_flags() -> None:
    ops = m.RecordingMountOps(statvfs=m.MS_NOSUID | m.MS_NODEV)
    ops.fail[("mount", "/t")] = errno.EPERM  # the first remount is refused, the retry works
    m.bind_remount(ops, "/t", m.MS_RDONLY)
    remount = m.MS_BIND | m.MS_REMOUNT | m.MS_RDONLY
    assert ops.mounts() == [
        ("mount", "", "/t", "", remount, ""),
        ("mount", "", "/t", "", remount | m.MS_NOSUID | m.MS_NODEV, ""),
    ]


def test_bind_remount_gives_up_when_nothing_is_locked() -> None:
    ops = m.RecordingMountOps(fail={("mount", "/t"): errno.EPERM})
    with pytest.raises(PermissionError):
        m.bind_remount(ops, "/t", m.MS_RDONLY)
    assert len(ops.mounts()) == 1


def test_unmount_all_deepest_first_lazy_when_busy() -> None:
    ops = m.RecordingMountOps(files={"/proc/self/mountinfo": MOUNTINFO})
    ops.fail[("umount2", "/tmp/ctr/dev")] = errno.EBUSY
    # the recorder never changes the mount table, so the second round sees no progress
    with pytest.raises(FailedPrecondition, match="stays mounted"):
        m.unmount_all("/tmp/ctr", ops=ops)
    nofollow = m.UMOUNT_NOFOLLOW
    assert ops.mounts()[:5] == [
        ("umount2", "/tmp/ctr/dev/pts", nofollow),
        ("umount2", "/tmp/ctr/with space", nofollow),
        ("umount2", "/tmp/ctr/dev", nofollow),
        ("umount2", "/tmp/ctr/dev", nofollow | m.MNT_DETACH),
        ("umount2", "/tmp/ctr", nofollow),
    ]


def test_is_bind() -> None:
    assert m.is_bind("bind", [])
    assert m.is_bind("none", ["rbind"])
    assert not m.is_bind("tmpfs", ["ro"])


def test_real_mount_reports_errno(tmp_path: Path) -> None:
    # an unprivileged-safe failure: an unknown file system type is EINVAL/ENODEV/EPERM
    with pytest.raises(OSError) as info:
        m.mount("none", str(tmp_path), "no-such-fs-type", 0, "")
    assert info.value.errno in (errno.ENODEV, errno.EPERM, errno.EINVAL)


@pytest.mark.parametrize(
    ("options", "attr_set", "attr_clr"),
    [
        (["ro", "nosuid"], 0, 0),
        (["rro"], m.MOUNT_ATTR_RDONLY, 0),
        (["rro", "rrw"], 0, m.MOUNT_ATTR_RDONLY),
        (
            ["rnosuid", "rnodev", "rnoexec"],
            m.MOUNT_ATTR_NOSUID | m.MOUNT_ATTR_NODEV | m.MOUNT_ATTR_NOEXEC,
            0,
        ),
        (["rexec", "rsuid"], 0, m.MOUNT_ATTR_NOEXEC | m.MOUNT_ATTR_NOSUID),
        (["rnoatime"], m.MOUNT_ATTR_NOATIME, m.MOUNT_ATTR__ATIME),
        (["rnoatime", "rstrictatime"], m.MOUNT_ATTR_STRICTATIME, m.MOUNT_ATTR__ATIME),
        (["rrelatime"], m.MOUNT_ATTR_RELATIME, m.MOUNT_ATTR__ATIME),
        (["rnosymfollow", "rnodiratime"], m.MOUNT_ATTR_NOSYMFOLLOW | m.MOUNT_ATTR_NODIRATIME, 0),
    ],
)
def test_parse_recursive_options(options: list[str], attr_set: int, attr_clr: int) -> None:
    assert m.parse_recursive_options(options) == (attr_set, attr_clr)
    assert m.parse_options(options)[2] == ""  # never passed to the kernel as data


def test_mount_all_applies_recursive_readonly(tmp_path: Path) -> None:
    ops = m.RecordingMountOps()
    m.mount_all([Mount("bind", "/src", ("rbind", "rro"))], str(tmp_path), ops=ops)
    assert ops.mounts() == [
        ("mount", "/src", str(tmp_path), "", m.MS_BIND | m.MS_REC, ""),
        ("mount_setattr", str(tmp_path), m.MOUNT_ATTR_RDONLY, 0),
    ]


def test_mountinfo_is_an_immutable_value() -> None:
    a, b = m.parse_mountinfo(MOUNTINFO)[1], m.parse_mountinfo(MOUNTINFO)[1]
    assert a == b and hash(a) == hash(b) and a != m.parse_mountinfo(MOUNTINFO)[2]
    assert "mountpoint='/'" in repr(a)
    with pytest.raises(AttributeError):
        a.mountpoint = "/elsewhere"  # type: ignore[misc]
