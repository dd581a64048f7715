"""Docker Config/HostConfig → OCI: the merge rules and Docker's defaults."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from skiff.engine import oci
from skiff.errors import InvalidArgument, NotImplementedYet


def test_merge_config_inherits_cmd_and_env_from_image() -> None:
    img = {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/w", "Labels": {"x": "1"}}
    out = oci.merge_config(img, {"Env": ["A=2", "B=3"], "Labels": {"y": "2"}})
    assert out["Cmd"] == ["sh"] and out["Entrypoint"] is None
    assert out["Env"] == ["PATH=/bin", "A=2", "B=3"]
    assert out["WorkingDir"] == "/w" and out["Labels"] == {"x": "1", "y": "2"}


def test_user_entrypoint_discards_image_cmd() -> None:
    img = {"Entrypoint": ["/init"], "Cmd": ["--serve"]}
    out = oci.merge_config(img, {"Entrypoint": ["/bin/echo"]})
    assert out["Entrypoint"] == ["/bin/echo"] and out["Cmd"] is None


def test_empty_entrypoint_resets_image_entrypoint_and_keeps_cmd() -> None:
    out = oci.merge_config({"Entrypoint": ["/init"], "Cmd": ["x"]}, {"Entrypoint": [""]})
    assert out["Entrypoint"] is None and out["Cmd"] == ["x"]


def test_no_command_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="no command specified"):
        oci.merge_config({}, {})


def test_default_path_added() -> None:
    assert oci.merge_env([], ["X=1"])[-1].startswith("PATH=/usr/local/sbin")


def test_default_capabilities_and_add_drop() -> None:
    assert len(oci.capabilities({})) == 14
    caps = oci.capabilities({"CapAdd": ["NET_ADMIN"], "CapDrop": ["chown"]})
    assert "CAP_NET_ADMIN" in caps and "CAP_CHOWN" not in caps
    assert oci.capabilities({"CapDrop": ["ALL"], "CapAdd": ["CAP_KILL"]}) == ["CAP_KILL"]
    assert oci.capabilities({"Privileged": True}) == oci.available_caps()
    with pytest.raises(InvalidArgument, match="unknown capability"):
        oci.capabilities({"CapAdd": ["NOPE"]})


def test_resources_map_docker_limits() -> None:
    res = oci.resources(
        {
            "Memory": 64 << 20,
            "NanoCpus": 1_500_000_000,
            "CpuShares": 512,
            "CpusetCpus": "0",
            "PidsLimit": 100,
        }
    )
    assert res["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    assert res["cpu"] == {"shares": 512, "period": 100000, "quota": 150000, "cpus": "0"}
    assert res["pids"] == {"limit": 100}
    assert res["devices"][0] == {"allow": False, "access": "rwm"}


def test_binds_and_named_volumes() -> None:
    assert oci.parse_bind("/a:/b:ro") == ("/a", "/b", ["rbind", "ro"])
    with pytest.raises(NotImplementedYet, match="named volume 'data'"):
        oci.parse_bind("data:/b")
    with pytest.raises(InvalidArgument):
        oci.parse_bind("/a:rel")


def test_tmpfs_and_mount_types(tmp_path: Path) -> None:
    mounts = oci.user_mounts(
        {
            "Tmpfs": {"/run": "size=1m"},
            "Mounts": [{"Type": "bind", "Source": str(tmp_path), "Target": "/m", "ReadOnly": True}],
        }
    )
    assert {
        "destination": "/m",
        "type": "bind",
        "source": str(tmp_path),
        "options": ["rbind", "ro"],
    } in mounts
    tmpfs = next(m for m in mounts if m["destination"] == "/run")
    assert "size=1m" in tmpfs["options"] and "noexec" in tmpfs["options"]
    with pytest.raises(NotImplementedYet, match="volumes are not available yet"):
        oci.user_mounts({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/v"}]})


def test_signals_and_sizes() -> None:
    assert oci.parse_signal("TERM") == signal.SIGTERM
    assert oci.parse_signal("SIGKILL") == signal.SIGKILL
    assert oci.parse_signal("9") == 9
    with pytest.raises(InvalidArgument):
        oci.parse_signal("SIGNOPE")
    assert oci.parse_memory_size("64m") == 64 << 20


def test_resolve_user_from_container_files(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n"
    )
    (tmp_path / "etc" / "group").write_text("root:x:0:\nbob:x:1000:\nwheel:x:10:bob\n")
    assert oci.resolve_user(str(tmp_path), "bob") == {
        "uid": 1000,
        "gid": 1000,
        "additionalGids": [10],
    }
    assert oci.resolve_user(str(tmp_path), "1234:55") == {"uid": 1234, "gid": 55}
    assert oci.resolve_user(str(tmp_path), "bob:wheel")["gid"] == 10
    with pytest.raises(InvalidArgument, match="unable to find user nobody"):
        oci.resolve_user(str(tmp_path), "nobody")


def test_build_spec_has_docker_defaults(tmp_path: Path) -> None:
    spec = oci.build_spec(
        container_id="c" * 64,
        rootfs=str(tmp_path),
        config={"Cmd": ["sh"], "Env": ["A=1"], "Tty": True},
        host_config={
            "ReadonlyRootfs": True,
            "Init": True,
            "ShmSize": 1 << 20,
            "NetworkMode": "none",
        },
        files_dir="/x",
        netns_path=None,
        pidns_path=None,
        ipcns_path=None,
        init_binary="/usr/local/lib/skiff/skiff-init",
        seccomp=None,
    )
    assert spec["process"]["args"] == ["/sbin/docker-init", "--", "sh"]
    assert "TERM=xterm" in spec["process"]["env"] and spec["process"]["terminal"] is True
    assert spec["root"]["readonly"] is True
    assert spec["linux"]["cgroupsPath"] == "skiff/" + "c" * 64
    assert (
        "/proc/kcore" in spec["linux"]["maskedPaths"]
        and "/proc/sys" in spec["linux"]["readonlyPaths"]
    )
    shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
    assert "size=1048576" in shm["options"]
    assert {"type": "network"} in spec["linux"]["namespaces"]
    host = oci.build_spec(
        container_id="d" * 64,
        rootfs=str(tmp_path),
        config={"Cmd": ["sh"]},
        host_config={"NetworkMode": "host"},
        files_dir="/x",
        netns_path=None,
        pidns_path=None,
        ipcns_path=None,
        init_binary=None,
        seccomp=None,
    )
    assert all(n["type"] not in ("network", "uts") for n in host["linux"]["namespaces"])


def test_etc_files(tmp_path: Path) -> None:
    oci.etc_files(
        container_id="e" * 64,
        config={"Hostname": "box"},
        host_config={"ExtraHosts": ["db:10.0.0.5"], "Dns": ["1.1.1.1"]},
        files_dir=str(tmp_path),
    )
    assert (tmp_path / "hostname").read_text() == "box\n"
    assert "10.0.0.5\tdb" in (tmp_path / "hosts").read_text()
    assert (tmp_path / "resolv.conf").read_text() == "nameserver 1.1.1.1\n"
