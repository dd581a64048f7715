"""skiff-shim under a real runtime: logs in Docker's json-file format, attach, stdin, exit file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.engine import shim_client

SHIM_SRC = Path(__file__).resolve().parents[3] / "src" / "skiff" / "engine" / "shim" / "shim.c"
RUNTIMES = [r for r in ("/usr/sbin/runc", "/usr/local/bin/skiff-runtime") if os.path.exists(r)]


@pytest.fixture(scope="module")
def shim_binary(tmp_path_factory: pytest.TempPathFactory) -> str:
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build skiff-shim")
    out = tmp_path_factory.mktemp("shim") / "skiff-shim"
    subprocess.run(
        ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(SHIM_SRC)], check=True
    )
    return str(out)


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="sks-", dir="/tmp"))  # short: holds unix sockets
    yield d
    shutil.rmtree(d, ignore_errors=True)


def bundle(workdir: Path, rootfs: Path, args: list[str], cid: str, tty: bool = False) -> Path:
    b = workdir / "bundle"
    b.mkdir()
    spec = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": tty,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin:/usr/bin"],
            "cwd": "/",
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "shimtest",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "mode=755"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "mount", "uts", "ipc")],
            "cgroupsPath": f"skiff/{cid}",
        },
    }
    (b / "config.json").write_text(json.dumps(spec))
    return b


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_shim_supervises_a_container(
    runtime: str,
    shim_binary: str,
    workdir: Path,
    busybox_rootfs: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SKIFF_SHIM", shim_binary)
    cid = f"shimtest-{uuid.uuid4().hex[:8]}"
    b = bundle(
        workdir,
        busybox_rootfs,
        ["sh", "-c", 'read line; echo "got $line"; echo oops >&2; exit 7'],
        cid,
    )
    spec = shim_client.ShimSpec(
        shim_dir=workdir / "shim",
        runtime=runtime,
        runtime_root=str(workdir / "rt"),
        process_id=cid,
        bundle=str(b),
        log_path=str(workdir / "log.json"),
        stdin=True,
    )
    try:
        launch = shim_client.spawn(spec)
        launch.expect_ready()
        pid = launch.expect_pid()
        assert pid > 0
        attach = shim_client.connect(
            spec.shim_dir, shim_client.WANT_STDOUT | shim_client.WANT_STDERR
        )
        subprocess.run([runtime, "--root", spec.runtime_root, "start", cid], check=True)
        attach.sendall(
            shim_client.frame(shim_client.STDIN, b"hello\n")
            + shim_client.frame(shim_client.CLOSE_STDIN)
        )
        frames = []
        while (f := shim_client.read_frame(attach)) is not None:
            frames.append(f)
            if f[0] == shim_client.EXIT:
                break
        assert (shim_client.STDOUT, b"got hello\n") in frames
        assert (shim_client.STDERR, b"oops\n") in frames
        assert frames[-1] == (shim_client.EXIT, b"7")
        record = shim_client.read_exit(spec.shim_dir)
        assert (
            record is not None and record["exit_code"] == 7 and record["finished_at"].endswith("Z")
        )
        entries = [json.loads(line) for line in (workdir / "log.json").read_text().splitlines()]
        assert {(e["stream"], e["log"]) for e in entries} == {
            ("stdout", "got hello\n"),
            ("stderr", "oops\n"),
        }
        assert all(e["time"].startswith("20") for e in entries)
    finally:
        subprocess.run(
            [runtime, "--root", spec.runtime_root, "delete", "--force", cid], capture_output=True
        )


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_shim_reports_runtime_errors(
    runtime: str,
    shim_binary: str,
    workdir: Path,
    busybox_rootfs: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SKIFF_SHIM", shim_binary)
    cid = f"shimerr-{uuid.uuid4().hex[:8]}"
    b = bundle(workdir, busybox_rootfs, ["sh"], cid)
    spec_file = b / "config.json"
    broken = json.loads(spec_file.read_text())
    broken["root"]["path"] = "/nonexistent-rootfs"
    spec_file.write_text(json.dumps(broken))
    spec = shim_client.ShimSpec(
        shim_dir=workdir / "shim",
        runtime=runtime,
        runtime_root=str(workdir / "rt"),
        process_id=cid,
        bundle=str(b),
    )
    try:
        launch = shim_client.spawn(spec)
        launch.expect_ready()
        with pytest.raises(Exception, match="create failed"):
            launch.expect_pid()
    finally:
        subprocess.run(
            [runtime, "--root", spec.runtime_root, "delete", "--force", cid], capture_output=True
        )
