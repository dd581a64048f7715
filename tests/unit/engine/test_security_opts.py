"""--security-opt, --privileged, userns-remap and the daemon's defaults → the OCI spec."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from skiff.daemon.main import load_config, parse_args
from skiff.engine import oci, security, userns
from skiff.errors import InvalidArgument

PROFILE_DENY_MKDIR = json.dumps(
    {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}],
    }
)


def spec(tmp_path: Path, hc: dict[str, Any], **kw: Any) -> dict[str, Any]:
    defaults = kw.pop("defaults", security.SecurityDefaults())
    opts = oci.security_options(hc, default_no_new_privileges=defaults.no_new_privileges)
    return oci.build_spec(
        container_id="c" * 64,
        rootfs=str(tmp_path),
        config={"Cmd": ["sh"]},
        host_config={"NetworkMode": "none", **hc},
        files_dir="/x",
        netns_path=None,
        pidns_path=None,
        ipcns_path=None,
        init_binary=None,
        seccomp=security.seccomp_for(opts, oci.capabilities(hc), defaults),
        security=opts,
        **kw,
    )


def allowed(section: dict[str, Any]) -> set[str]:
    return {
        n
        for call in section["syscalls"]
        if call["action"] == "SCMP_ACT_ALLOW" and not call.get("args")
        for n in call["names"]
    }


def test_default_container_gets_the_builtin_profile(tmp_path: Path) -> None:
    s = spec(tmp_path, {})
    sec = s["linux"]["seccomp"]
    assert sec["defaultAction"] == "SCMP_ACT_ERRNO" and sec["defaultErrnoRet"] == 1
    assert "read" in allowed(sec) and "mount" not in allowed(sec)
    assert s["process"]["noNewPrivileges"] is False
    assert "/proc/kcore" in s["linux"]["maskedPaths"]
    sysfs = next(m for m in s["mounts"] if m["destination"] == "/sys")
    assert "ro" in sysfs["options"]
    assert "devices" not in s["linux"]


def test_cap_add_sys_admin_narrows_the_profile_differently(tmp_path: Path) -> None:
    sec = spec(tmp_path, {"CapAdd": ["SYS_ADMIN"]})["linux"]["seccomp"]
    assert {"mount", "umount2", "unshare", "setns"} <= allowed(sec)


def test_unconfined_has_no_filter_and_keeps_default_caps(tmp_path: Path) -> None:
    s = spec(tmp_path, {"SecurityOpt": ["seccomp=unconfined"]})
    assert "seccomp" not in s["linux"]
    assert s["process"]["capabilities"]["bounding"] == list(oci.DEFAULT_CAPS)
    assert "maskedPaths" in s["linux"]


def test_custom_profile_text_is_converted(tmp_path: Path) -> None:
    sec = spec(tmp_path, {"SecurityOpt": [f"seccomp={PROFILE_DENY_MKDIR}"]})["linux"]["seccomp"]
    assert sec["defaultAction"] == "SCMP_ACT_ALLOW"
    assert sec["syscalls"] == [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    # the old colon form docker still accepts
    sec2 = spec(tmp_path, {"SecurityOpt": [f"seccomp:{PROFILE_DENY_MKDIR}"]})["linux"]["seccomp"]
    assert sec2 == sec


def test_invalid_profiles_and_options_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        oci.security_options({"SecurityOpt": ["seccomp={nope"]})
    with pytest.raises(InvalidArgument, match="must be a JSON object"):
        oci.security_options({"SecurityOpt": ["seccomp=[1]"]})
    with pytest.raises(InvalidArgument, match="invalid --security-opt 'bogus=1'"):
        oci.security_options({"SecurityOpt": ["bogus=1"]})
    with pytest.raises(InvalidArgument, match="true or false"):
        oci.security_options({"SecurityOpt": ["no-new-privileges=maybe"]})


def test_no_new_privileges_forms_and_daemon_default(tmp_path: Path) -> None:
    for form in ("no-new-privileges", "no-new-privileges=true", "no-new-privileges:true"):
        assert spec(tmp_path, {"SecurityOpt": [form]})["process"]["noNewPrivileges"] is True
    on = security.SecurityDefaults(no_new_privileges=True)
    assert spec(tmp_path, {}, defaults=on)["process"]["noNewPrivileges"] is True
    off = {"SecurityOpt": ["no-new-privileges=false"]}
    assert spec(tmp_path, off, defaults=on)["process"]["noNewPrivileges"] is False


def test_privileged(tmp_path: Path) -> None:
    s = spec(tmp_path, {"Privileged": True, "SecurityOpt": [f"seccomp={PROFILE_DENY_MKDIR}"]})
    assert "seccomp" not in s["linux"]
    assert "maskedPaths" not in s["linux"] and "readonlyPaths" not in s["linux"]
    caps = s["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == oci.available_caps()
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    for dest in ("/sys", "/sys/fs/cgroup"):
        m = next(m for m in s["mounts"] if m["destination"] == dest)
        assert "rw" in m["options"] and "ro" not in m["options"]
    paths = {d["path"] for d in s["linux"].get("devices", [])}
    assert paths == {d["path"] for d in oci.host_devices()}
    assert not any(p.startswith(("/dev/pts/", "/dev/shm/")) for p in paths)


def test_host_devices_reads_device_nodes_only(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    (tmp_path / "pts").mkdir()
    os.mknod(tmp_path / "null", 0o20666, os.makedev(1, 3))
    os.mknod(tmp_path / "pts" / "0", 0o20620, os.makedev(136, 0))
    (tmp_path / "regular").write_text("x")
    devs = oci.host_devices(str(tmp_path))
    assert [(d["path"], d["type"], d["major"], d["minor"]) for d in devs] == [
        ("/dev/null", "c", 1, 3)
    ]


def test_systempaths_unconfined_and_security_warnings(tmp_path: Path) -> None:
    s = spec(tmp_path, {"SecurityOpt": ["systempaths=unconfined"]})
    assert "maskedPaths" not in s["linux"] and "seccomp" in s["linux"]
    opts = oci.security_options({"SecurityOpt": ["label=disable"]})
    if not os.path.exists("/sys/fs/selinux/enforce"):
        assert opts.warnings and "SELinux is not enabled" in opts.warnings[0]


def test_writable_cgroups(tmp_path: Path) -> None:
    s = spec(tmp_path, {"SecurityOpt": ["writable-cgroups=true"]})
    cg = next(m for m in s["mounts"] if m["destination"] == "/sys/fs/cgroup")
    assert "rw" in cg["options"] and "seccomp" in s["linux"]


def test_cgroupns_modes(tmp_path: Path) -> None:
    private = spec(tmp_path, {"CgroupnsMode": "private"})["linux"]["namespaces"]
    host = spec(tmp_path, {"CgroupnsMode": "host"})["linux"]["namespaces"]
    assert {"type": "cgroup"} in private and {"type": "cgroup"} not in host
    with pytest.raises(InvalidArgument, match="--cgroupns"):
        spec(tmp_path, {"CgroupnsMode": "weird"})


def test_daemon_profile_setting(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(PROFILE_DENY_MKDIR)
    custom = security.SecurityDefaults(seccomp_profile=security.load_seccomp_profile(str(path)))
    assert spec(tmp_path, {}, defaults=custom)["linux"]["seccomp"]["defaultAction"] == (
        "SCMP_ACT_ALLOW"
    )
    assert custom.security_options(cgroupns=False) == ["name=seccomp,profile=custom"]
    none = security.SecurityDefaults(seccomp_profile=security.load_seccomp_profile("unconfined"))
    assert "seccomp" not in spec(tmp_path, {}, defaults=none)["linux"]
    assert none.security_options(cgroupns=True) == ["name=cgroupns"]
    path.write_text("{}")
    with pytest.raises(InvalidArgument, match="no defaultAction"):
        security.load_seccomp_profile(str(path))
    with pytest.raises(InvalidArgument, match="seccomp-profile /nonexistent"):
        security.load_seccomp_profile("/nonexistent")


def test_daemon_config_keys(tmp_path: Path) -> None:
    cfg_file = tmp_path / "daemon.json"
    cfg_file.write_text(json.dumps({"no-new-privileges": True, "seccomp-profile": "unconfined"}))
    cfg = load_config(parse_args(["--config-file", str(cfg_file)]))
    sec = cfg["security"]
    assert sec.no_new_privileges is True and sec.seccomp_profile == "unconfined"
    assert sec.idmap is None
    assert sec.security_options(cgroupns=False) == ["name=no-new-privileges"]
    assert load_config(parse_args([]))["security"].security_options(cgroupns=False) == [
        "name=seccomp,profile=builtin"
    ]
    cfg_file.write_text(json.dumps({"no-new-privileges": "yes"}))
    with pytest.raises(InvalidArgument, match="no-new-privileges"):
        load_config(parse_args(["--config-file", str(cfg_file)]))


# ---- userns-remap ----------------------------------------------------------------------------------

IDMAP = oci.IdMap(200000, 65536, 300000, 65536)


def test_userns_spec_has_user_namespace_and_mappings(tmp_path: Path) -> None:
    s = spec(tmp_path, {}, idmap=IDMAP)
    assert s["linux"]["namespaces"][0] == {"type": "user"}
    assert s["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 200000, "size": 65536}]
    assert s["linux"]["gidMappings"] == [{"containerID": 0, "hostID": 300000, "size": 65536}]
    # a network namespace of the host's user namespace: sysfs cannot be mounted, /sys is bound
    joined = oci.build_spec(
        container_id="c" * 64,
        rootfs=str(tmp_path),
        config={"Cmd": ["sh"]},
        host_config={},
        files_dir="/x",
        netns_path="/run/netns/x",
        pidns_path=None,
        ipcns_path=None,
        init_binary=None,
        seccomp=None,
        idmap=IDMAP,
    )
    sysfs = next(m for m in joined["mounts"] if m["destination"] == "/sys")
    assert sysfs["type"] == "bind" and sysfs["source"] == "/sys" and "ro" in sysfs["options"]


def test_userns_refuses_privileged(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="--userns=host"):
        spec(tmp_path, {"Privileged": True}, idmap=IDMAP)


def test_userns_host_opts_out() -> None:
    d = security.SecurityDefaults(idmap=IDMAP)
    assert security.idmap_for({}, d) == IDMAP
    assert security.idmap_for({"UsernsMode": "host"}, d) is None
    with pytest.raises(InvalidArgument, match="--userns"):
        security.idmap_for({"UsernsMode": "private"}, d)


def test_idmap_translation() -> None:
    assert IDMAP.host_uid(0) == 200000 and IDMAP.host_gid(5) == 300005
    assert IDMAP.host_uid(70000) == 65534  # outside the map: the overflow id


def test_resolve_default_creates_entry_after_existing_ranges(tmp_path: Path) -> None:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("alice:100000:65536\n")
    m = userns.resolve("default", subuid=str(subuid), subgid=str(subgid))
    assert subuid.read_text() == "alice:100000:65536\nskiff:165536:65536\n"
    assert subgid.read_text() == "skiff:100000:65536\n"
    assert m == oci.IdMap(165536, 65536, 100000, 65536)
    # idempotent
    assert userns.resolve("default", subuid=str(subuid), subgid=str(subgid)) == m
    assert subuid.read_text().count("skiff:") == 1


def test_resolve_named_user_needs_entries(tmp_path: Path) -> None:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("bob:500000:1000\n")
    subgid.write_text("staff:600000:2000\n")
    m = userns.resolve("bob:staff", subuid=str(subuid), subgid=str(subgid))
    assert m == oci.IdMap(500000, 1000, 600000, 2000)
    with pytest.raises(InvalidArgument, match="no subordinate gid range for bob"):
        userns.resolve("bob", subuid=str(subuid), subgid=str(subgid))
    with pytest.raises(InvalidArgument, match="empty value"):
        userns.parse_remap("")


def test_shift_tree_keeps_modes_and_hard_links(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    root = tmp_path / "layer"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "su").write_text("x")
    os.chmod(root / "bin" / "su", 0o4755)
    os.link(root / "bin" / "su", root / "bin" / "su2")
    os.symlink("su", root / "bin" / "link")
    os.chown(root / "bin", 0, 50)
    userns.shift_tree(str(root), IDMAP)
    st = os.stat(root / "bin" / "su")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (200000, 300000, 0o4755)
    assert os.stat(root / "bin").st_gid == 300050
    assert os.lstat(root / "bin" / "link").st_uid == 200000
    assert os.stat(root / "bin" / "su2").st_ino == st.st_ino


def test_shifted_layer_copy_is_made_once_and_pruned_with_its_source(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    layer = tmp_path / "layer"
    (layer / "etc").mkdir(parents=True)
    (layer / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    cache = tmp_path / "cache"
    copy = userns.shifted_layer(str(layer), cache, IDMAP)
    assert os.stat(Path(copy) / "etc" / "passwd").st_uid == 200000
    assert os.stat(layer / "etc" / "passwd").st_uid == 0  # the image's layer is untouched
    assert userns.shifted_layer(str(layer), cache, IDMAP) == copy
    assert userns.prune_shifted_layers(cache) == []
    shutil.rmtree(layer)
    assert userns.prune_shifted_layers(cache) == [copy]
    assert not os.path.exists(copy)
