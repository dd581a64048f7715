"""Fixtures for driving the real `skiff-runtime` (and runc, for differential tests).

`runtime` runs the installed command with its own --root under tmp; `bundle()` writes a
config.json (runc's default spec, no terminal, the busybox rootfs) and returns its directory.
Every container id handed out is force-deleted at teardown, even when the test failed.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SKIFF_RUNTIME = "/opt/skiff/venv/bin/skiff-runtime"
RUNC = "/usr/sbin/runc"


class Runtime:
    def __init__(self, binary: str, root: Path, work: Path, rootfs: Path) -> None:
        self.binary = binary
        self.root = root
        self.work = work
        self.rootfs = rootfs
        self.ids: list[str] = []

    def __call__(
        self, *args: str, input: bytes | None = None, timeout: float = 30, **kw: Any
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [self.binary, "--root", str(self.root), *args],
            input=input,
            capture_output=True,
            timeout=timeout,
            **kw,
        )

    def detached(self, *args: str, timeout: float = 30) -> tuple[int, str]:
        """Run a command whose container outlives it (create, run -d): the container keeps
        our stdio, so capture stderr through a file instead of a pipe."""
        log = self.work / f"stderr-{uuid.uuid4().hex[:8]}"
        with open(log, "wb") as err:
            proc = subprocess.run(
                [self.binary, "--root", str(self.root), *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                timeout=timeout,
            )
        return proc.returncode, log.read_text()

    def popen(self, *args: str, **kw: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen([self.binary, "--root", str(self.root), *args], **kw)

    def new_id(self, prefix: str = "t") -> str:
        cid = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid

    def bundle(
        self,
        args: list[str],
        mutate: Callable[[dict[str, Any]], None] | None = None,
        *,
        rootfs: Path | None = None,
    ) -> Path:
        spec = base_spec(args, rootfs or self.rootfs)
        if mutate:
            mutate(spec)
        path = self.work / f"bundle-{uuid.uuid4().hex[:8]}"
        path.mkdir()
        (path / "config.json").write_text(json.dumps(spec))
        return path

    def state(self, cid: str) -> dict[str, Any]:
        out = self("state", cid)
        assert out.returncode == 0, out.stderr
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def cleanup(self) -> None:
        for cid in self.ids:
            subprocess.run(
                [self.binary, "--root", str(self.root), "delete", "--force", cid],
                capture_output=True,
                timeout=30,
            )


def base_spec(args: list[str], rootfs: Path) -> dict[str, Any]:
    from skiff.runtime.specgen import default_spec

    spec = copy.deepcopy(default_spec())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["root"] = {"path": str(rootfs), "readonly": True}
    return spec


def _make(binary: str, tmp_path: Path, rootfs: Path, name: str) -> Iterator[Runtime]:
    if not os.path.exists(binary):
        pytest.skip(f"{binary} is not installed")
    root = tmp_path / f"{name}-root"
    work = tmp_path / f"{name}-work"
    work.mkdir()
    rt = Runtime(binary, root, work, rootfs)
    try:
        yield rt
    finally:
        rt.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def runtime(tmp_path: Path, busybox_rootfs: Path) -> Iterator[Runtime]:
    yield from _make(SKIFF_RUNTIME, tmp_path, busybox_rootfs, "skiff")


@pytest.fixture
def runc(tmp_path: Path, busybox_rootfs: Path) -> Iterator[Runtime]:
    yield from _make(RUNC, tmp_path, busybox_rootfs, "runc")
