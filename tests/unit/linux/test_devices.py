"""skiff.linux.devices: linux.devices parsing and node creation, recorded without root."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from skiff.errors import InvalidArgument
from skiff.linux import devices
from skiff.linux.mount import MS_BIND, RecordingMountOps


def test_parse_devices() -> None:
    parsed = devices.parse_devices(
        [
            {
                "path": "/dev/fuse",
                "type": "c",
                "major": 10,
                "minor": 229,
                "fileMode": 0o600,
                "uid": 5,
                "gid": 6,
            },
            {"path": "/dev/fifo", "type": "p"},
        ]
    )
    assert parsed[0] == devices.Device("/dev/fuse", "c", 10, 229, 0o600, 5, 6)
    assert parsed[0].mode == stat.S_IFCHR | 0o600
    assert parsed[0].rdev == os.makedev(10, 229)
    assert parsed[1].mode == stat.S_IFIFO | 0o666 and parsed[1].rdev == 0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "c", "major": 1, "minor": 3}, "missing 'path'"),
        ({"path": "dev/x", "type": "c", "major": 1, "minor": 3}, "not absolute"),
        ({"path": "/dev/x", "type": "z", "major": 1, "minor": 3}, "unknown device type 'z'"),
        ({"path": "/dev/x", "type": "b"}, "needs major and minor"),
    ],
)
def test_parse_devices_errors_name_the_entry(entry: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"linux.devices\[1\]: .*{message}"):
        devices.parse_devices([{"path": "/dev/ok", "type": "p"}, entry])


def test_create_device_mknod_chmod_chown(tmp_path: Path) -> None:
    ops = RecordingMountOps()
    dev = devices.Device("/dev/sub/fuse", "c", 10, 229, 0o620, 7, 8)
    devices.create_device(ops, str(tmp_path), dev, bind_from_host=False)
    host = str(tmp_path / "dev" / "sub" / "fuse")
    assert (tmp_path / "dev" / "sub").is_dir()
    assert ops.calls == [
        ("mknod", host, stat.S_IFCHR | 0o620, os.makedev(10, 229)),
        ("chmod", host, 0o620),
        ("lchown", host, 7, 8),
    ]


def test_create_device_binds_from_host_in_user_namespace(tmp_path: Path) -> None:
    ops = RecordingMountOps()
    devices.create_device(ops, str(tmp_path), devices.DEFAULT_DEVICES[0], bind_from_host=True)
    assert (tmp_path / "dev" / "null").is_file()
    assert ops.mounts() == [("mount", "/dev/null", str(tmp_path / "dev" / "null"), "", MS_BIND, "")]


def test_create_device_falls_back_to_bind_on_eperm(tmp_path: Path) -> None:
    host = str(tmp_path / "dev" / "zero")
    ops = RecordingMountOps(fail={("mknod", host): errno.EPERM})
    devices.create_device(ops, str(tmp_path), devices.DEFAULT_DEVICES[1], bind_from_host=False)
    assert ops.mounts() == [("mount", "/dev/zero", host, "", MS_BIND, "")]


def test_create_device_keeps_existing_node(tmp_path: Path) -> None:
    host = str(tmp_path / "dev" / "zero")
    ops = RecordingMountOps(fail={("mknod", host): errno.EEXIST})
    devices.create_device(ops, str(tmp_path), devices.DEFAULT_DEVICES[1], bind_from_host=False)
    assert [c[0] for c in ops.calls] == ["mknod"]


def test_device_symlinks_and_ptmx(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "ptmx").write_text("")
    ops = RecordingMountOps()
    devices.create_dev_symlinks(ops, str(tmp_path))
    devices.setup_ptmx(ops, str(tmp_path))
    dev = str(tmp_path / "dev")
    assert ("symlink", "/proc/self/fd", f"{dev}/fd") in ops.calls
    assert ("symlink", "/proc/self/fd/2", f"{dev}/stderr") in ops.calls
    assert ops.calls[-2:] == [("unlink", f"{dev}/ptmx"), ("symlink", "pts/ptmx", f"{dev}/ptmx")]


def test_device_is_an_immutable_value() -> None:
    dev = devices.Device("/dev/fuse", "c", 10, 229)
    assert dev == devices.Device("/dev/fuse", "c", 10, 229, 0o666, 0, 0)
    assert hash(dev) == hash(devices.Device("/dev/fuse", "c", 10, 229))
    assert dev != devices.Device("/dev/fuse", "c", 10, 230)
    assert dev.mode == 0o20666 and dev.rdev == os.makedev(10, 229)
    with pytest.raises(AttributeError):
        dev.minor = 1  # type: ignore[misc]
