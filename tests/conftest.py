"""Shared fixtures and the rules that mark tests by directory.

tests/unit        no root, no kernel objects: runs anywhere.
tests/integration needs root: real namespaces, mounts, cgroups, veths (skipped otherwise, saying why).
tests/e2e         real clients (docker CLI, docker-py, skopeo) against a real skiffd (root too).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if "e2e" in parts:
            item.add_marker(pytest.mark.e2e)
        if ("integration" in parts or "e2e" in parts) and not IS_ROOT:
            item.add_marker(
                pytest.mark.skip(reason="needs root: creates namespaces, mounts, cgroups")
            )


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference beside the checkout (specs and schemas); skip where absent."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE}")
    return REFERENCE


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only-by-convention busybox root filesystem built once per session from busybox-static."""
    from skiff.images.bootstrap import build_busybox_rootfs

    if not any(os.path.exists(p) for p in ("/bin/busybox", "/usr/bin/busybox")):
        pytest.skip("busybox-static is not installed (make install brings it)")
    return build_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def fresh_busybox_rootfs(tmp_path: Path, busybox_rootfs: Path) -> Iterator[Path]:
    """A private copy of the busybox rootfs a test may write to."""
    dest = tmp_path / "rootfs"
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    yield dest
