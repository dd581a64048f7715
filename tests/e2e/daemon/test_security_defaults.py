"""Secure defaults seen through the real docker CLI: the builtin seccomp profile, --security-opt,
--cap-add, --privileged, no-new-privileges, /info, RUN steps, and userns-remap."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.engine import oci

from .conftest import Daemon, default_runtime_args, start_daemon

DEFAULT_CAPEFF = "00000000a80425fb"  # Docker's 14 default capabilities


def status(d: Daemon, *flags: str) -> dict[str, str]:
    out = d.docker("run", "--rm", *flags, "busybox", "cat", "/proc/self/status").stdout
    return {k: v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def test_default_container_is_filtered_by_seccomp(skiffd: Daemon) -> None:
    s = status(skiffd)
    assert s["Seccomp"] == "2"
    assert s["NoNewPrivs"] == "0"
    assert s["CapEff"] == DEFAULT_CAPEFF


@pytest.mark.parametrize("flag", ["-U", "-m"])
def test_default_profile_blocks_unshare(skiffd: Daemon, flag: str) -> None:
    res = skiffd.docker("run", "--rm", "busybox", "unshare", flag, "true", check=False)
    assert res.returncode != 0
    assert "Operation not permitted" in res.stderr


def test_unconfined_allows_user_namespaces_but_keeps_caps_dropped(skiffd: Daemon) -> None:
    unconfined = ("--security-opt", "seccomp=unconfined")
    # an unprivileged user namespace is allowed by the kernel: only seccomp blocked it
    skiffd.docker("run", "--rm", *unconfined, "busybox", "unshare", "-U", "true")
    s = status(skiffd, *unconfined)
    assert s["Seccomp"] == "0" and s["CapEff"] == DEFAULT_CAPEFF
    # a mount namespace needs CAP_SYS_ADMIN, which the container still lacks
    res = skiffd.docker("run", "--rm", *unconfined, "busybox", "unshare", "-m", "true", check=False)
    assert res.returncode != 0 and "Operation not permitted" in res.stderr


def test_cap_add_sys_admin_enables_mount_syscalls(skiffd: Daemon) -> None:
    res = skiffd.docker(
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /m && mount -t tmpfs none /m && grep -c ' /m tmpfs' /proc/mounts "
        "&& unshare -m true && grep Seccomp: /proc/self/status",
    )
    assert res.stdout.split()[:1] == ["1"] and "Seccomp:\t2" in res.stdout


def test_privileged_mounts_and_sees_host_devices(skiffd: Daemon) -> None:
    extra = sorted(
        d["path"]
        for d in oci.host_devices()
        if d["path"] not in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random")
        and d["path"].count("/") == 2
        and not d["path"].startswith(("/dev/tty", "/dev/pts"))
    )
    if not extra:
        pytest.skip("the host has no device node beyond Docker's defaults")
    probe = extra[0]
    res = skiffd.docker(
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        f"mkdir -p /m && mount -t tmpfs none /m && grep -c ' /m tmpfs' /proc/mounts && ls {probe} "
        "&& grep -E '^(Seccomp|CapEff):' /proc/self/status && grep ' /sys ' /proc/mounts",
    )
    lines = res.stdout.splitlines()
    assert lines[0] == "1" and probe in lines[1]
    host_bounding = next(
        line.split()[1]
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("CapBnd:")
    )
    assert "Seccomp:\t0" in res.stdout and f"CapEff:\t{host_bounding}" in res.stdout
    assert " rw," in next(line for line in lines if " /sys " in line)
    # the same device is absent without --privileged
    plain = skiffd.docker("run", "--rm", "busybox", "ls", probe, check=False)
    assert plain.returncode != 0


def test_no_new_privileges(skiffd: Daemon) -> None:
    assert status(skiffd, "--security-opt", "no-new-privileges")["NoNewPrivs"] == "1"
    assert status(skiffd, "--security-opt", "no-new-privileges=false")["NoNewPrivs"] == "0"


def test_custom_profile_file(skiffd: Daemon, tmp_path: Path) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }
    path = tmp_path / "no-mkdir.json"
    path.write_text(json.dumps(profile))
    res = skiffd.docker(
        "run", "--rm", "--security-opt", f"seccomp={path}", "busybox", "mkdir", "/x", check=False
    )
    assert res.returncode != 0 and "Operation not permitted" in res.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = skiffd.docker("run", "--rm", "--security-opt", f"seccomp={bad}", "busybox", check=False)
    assert res.returncode != 0


def test_label_accepted_with_a_warning_and_unknown_refused(skiffd: Daemon) -> None:
    if os.path.exists("/sys/fs/selinux/enforce"):
        pytest.skip("SELinux is enabled on this host")
    res = skiffd.docker("create", "--security-opt", "label=disable", "busybox", "true")
    skiffd.docker("rm", res.stdout.strip())
    assert "SELinux is not enabled" in res.stderr
    res = skiffd.docker("create", "--security-opt", "bogus=1", "busybox", "true", check=False)
    assert res.returncode != 0 and "invalid --security-opt" in res.stderr


def test_info_security_options(skiffd: Daemon) -> None:
    opts = json.loads(skiffd.docker("info", "--format", "{{json .SecurityOptions}}").stdout)
    assert "name=seccomp,profile=builtin" in opts
    assert ("name=cgroupns" in opts) == oci.cgroup2_only()
    assert "name=no-new-privileges" not in opts


def test_build_run_step_gets_the_default_profile(skiffd: Daemon, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN grep Seccomp: /proc/self/status && ! unshare -U true\n"
    )
    env_docker = dict(skiffd.env)
    skiffd.env["DOCKER_BUILDKIT"] = "0"
    try:
        res = skiffd.docker("build", "--no-cache", "-q", str(tmp_path), check=False)
    finally:
        skiffd.env = env_docker
    assert res.returncode == 0, res.stderr
    tag = res.stdout.strip()
    skiffd.docker("rmi", tag, check=False)


# ---- a second daemon: userns-remap and daemon-wide defaults ----------------------------------------


@pytest.fixture(scope="module")
def remapped(helper_env: dict[str, str], busybox_rootfs: Path) -> Iterator[Daemon]:
    saved = {}
    for path in ("/etc/subuid", "/etc/subgid"):
        saved[path] = Path(path).read_bytes() if os.path.exists(path) else None
    root = Path(tempfile.mkdtemp(prefix="skr-", dir="/tmp"))
    os.chmod(root, 0o711)  # the remapped root must traverse to its rootfs
    config = root / "daemon.json"
    config.write_text(json.dumps({"userns-remap": "default", "no-new-privileges": True}))
    d = None
    try:
        d = start_daemon(
            root,
            helper_env,
            [*default_runtime_args(), "--config-file", str(config)],
            busybox_rootfs,
        )
        yield d
    finally:
        if d is not None:
            d.cleanup()
        shutil.rmtree(root, ignore_errors=True)
        for path, text in saved.items():
            if text is None:
                Path(path).unlink(missing_ok=True)
            else:
                Path(path).write_bytes(text)


def _skiff_range(path: str) -> int:
    for line in Path(path).read_text().splitlines():
        name, start, size = line.split(":")
        if name == "skiff":
            assert size == "65536"
            return int(start)
    raise AssertionError(f"no skiff entry in {path}")


def test_userns_remap_maps_root_to_the_subordinate_range(remapped: Daemon) -> None:
    uid, gid = _skiff_range("/etc/subuid"), _skiff_range("/etc/subgid")
    out = remapped.docker(
        "run", "--rm", "busybox", "cat", "/proc/self/uid_map", "/proc/self/gid_map"
    ).stdout.split()
    assert out == ["0", str(uid), "65536", "0", str(gid), "65536"]
    # image files still belong to root inside; the daemon's no-new-privileges applies
    inside = remapped.docker(
        "run", "--rm", "busybox", "sh", "-c", "stat -c %u:%g /bin/busybox /etc/hosts"
    ).stdout.split()
    assert inside == ["0:0", "0:0"]
    assert status(remapped)["NoNewPrivs"] == "1"
    opts = json.loads(remapped.docker("info", "--format", "{{json .SecurityOptions}}").stdout)
    assert "name=userns" in opts and "name=no-new-privileges" in opts


def test_userns_remap_volume_files_owned_by_remapped_root(remapped: Daemon) -> None:
    uid, gid = _skiff_range("/etc/subuid"), _skiff_range("/etc/subgid")
    vol = remapped.root / "vol"
    remapped.docker("run", "--rm", "-v", f"{vol}:/data", "busybox", "touch", "/data/f")
    st = os.stat(vol / "f")
    assert (st.st_uid, st.st_gid) == (uid, gid)


def test_userns_remap_named_volume_and_refusals(remapped: Daemon) -> None:
    uid = _skiff_range("/etc/subuid")
    remapped.docker("volume", "create", "remapvol")
    try:
        remapped.docker("run", "--rm", "-v", "remapvol:/data", "busybox", "touch", "/data/f")
        mountpoint = remapped.docker(
            "volume", "inspect", "-f", "{{.Mountpoint}}", "remapvol"
        ).stdout.strip()
        assert os.stat(Path(mountpoint) / "f").st_uid == uid
    finally:
        remapped.docker("volume", "rm", "remapvol", check=False)
    cid = remapped.docker("run", "-d", "busybox", "sleep", "60").stdout.strip()
    try:
        # not yet: the container joined the host-owned netns skiffd's networking made
        res = remapped.docker("exec", cid, "id", "-u", check=False)
        assert res.returncode != 0 and "--userns=host" in res.stderr
        res = remapped.docker("commit", cid, "remapped:snap", check=False)
        assert res.returncode != 0 and "userns-remap" in res.stderr
    finally:
        remapped.docker("rm", "-f", cid, check=False)


def test_userns_host_opts_out_and_privileged_needs_it(remapped: Daemon) -> None:
    out = remapped.docker(
        "run", "--rm", "--userns=host", "busybox", "cat", "/proc/self/uid_map"
    ).stdout.split()
    assert out == ["0", "0", "4294967295"]
    res = remapped.docker("run", "--rm", "--privileged", "busybox", "true", check=False)
    assert res.returncode != 0 and "incompatible with user namespaces" in res.stderr
