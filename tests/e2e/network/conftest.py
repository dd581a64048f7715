"""A test skiffd with bridge networking on a bridge of its own (own name, own subnet, own nft
table), for the network and volume tests."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.daemon.conftest import Daemon, default_runtime_args, helper_env, start_daemon

__all__ = ["helper_env", "netd"]


@pytest.fixture(scope="module")
def netd(helper_env: dict[str, str], busybox_rootfs: Path) -> Iterator[Daemon]:
    root = Path(tempfile.mkdtemp(prefix="skn-", dir="/tmp"))
    bridge = f"skn{secrets.token_hex(3)}"
    d = start_daemon(
        root, helper_env, [*default_runtime_args(), "--bridge", bridge], busybox_rootfs
    )
    d.bridge = bridge  # type: ignore[attr-defined]
    try:
        yield d
    finally:
        d.cleanup()
        shutil.rmtree(root, ignore_errors=True)
