"""Differential test: the mount table prepare_rootfs builds equals the one runc builds.

One config (`runc spec`, with Docker's /proc options and a read-only bind) runs once under
runc and once through prepare_rootfs in a forked child; both print /proc/self/mountinfo.
Compared: every mount's point, type, per-mount options and superblock options, in order
(mount ids, device numbers and the cgroup paths, which differ by design, are left out).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from skiff.runtime.rootfs import prepare_rootfs

RUNC = shutil.which("runc") or "/usr/sbin/runc"


def _load_nsutil() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_nsutil", Path(__file__).with_name("_nsutil.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ns = _load_nsutil()


def normalize(mountinfo: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for line in mountinfo.splitlines():
        fields = line.split()
        sep = fields.index("-", 6)
        mountpoint, options = fields[4], fields[5]
        fstype, super_options = fields[sep + 1], fields[sep + 3]
        rows.append((mountpoint, fstype, options, super_options))
    return rows


def runc_spec(bundle: Path, data: Path, name: str) -> dict[str, Any]:
    subprocess.run([RUNC, "spec", "--bundle", str(bundle)], check=True)
    spec: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["cat", "/proc/self/mountinfo"]
    spec["mounts"][0]["options"] = ["nosuid", "noexec", "nodev"]  # as Docker has it
    spec["mounts"].append(
        {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", "ro"]}
    )
    # relative: runc nests it under this process's own cgroup in every hierarchy
    spec["linux"]["cgroupsPath"] = f"skiff/{name}"
    (bundle / "config.json").write_text(json.dumps(spec))
    return spec


@pytest.mark.skipif(not os.path.exists(RUNC), reason="runc is not installed")
def test_same_mount_table_as_runc(fresh_busybox_rootfs: Path, tmp_path: Path) -> None:
    bundle = fresh_busybox_rootfs.parent
    data = tmp_path / "data"
    data.mkdir()
    name = f"skiff-rdiff-{uuid.uuid4().hex[:10]}"
    spec = runc_spec(bundle, data, name)
    state = tmp_path / "runc-state"
    try:
        ran = subprocess.run(
            [RUNC, "--root", str(state), "run", "--bundle", str(bundle), name],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        subprocess.run([RUNC, "--root", str(state), "delete", "--force", name], capture_output=True)
    assert ran.returncode == 0, ran.stderr
    theirs = normalize(ran.stdout)

    def init() -> None:
        prepare_rootfs(spec, str(bundle))
        os.execv("/bin/busybox", ["cat", "/proc/self/mountinfo"])

    code, output = ns.run_in_namespaces(init)
    assert code == 0, output
    ours = normalize(output)
    assert ours == theirs
