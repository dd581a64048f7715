"""Fixtures for the hardening proofs: the daemon suite's test skiffd, reused, plus host probes.

The skiffd fixture (own data-root, exec-root, socket; shim compiled from source; a busybox image)
lives in tests/e2e/daemon/conftest.py; it is loaded here by path (the suite runs in importlib
mode, so conftests are not importable by name) and re-exported.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_DAEMON_CONFTEST = Path(__file__).resolve().parents[1] / "daemon" / "conftest.py"
_spec = importlib.util.spec_from_file_location("skiff_e2e_daemon_conftest", _DAEMON_CONFTEST)
assert _spec is not None and _spec.loader is not None
daemon_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(daemon_conftest)

helper_env = daemon_conftest.helper_env
Daemon = daemon_conftest.Daemon

_CRASHLIB = Path(__file__).resolve().parents[3] / "bench" / "crash" / "crashlib.py"
_cspec = importlib.util.spec_from_file_location("skiff_crashlib", _CRASHLIB)
assert _cspec is not None and _cspec.loader is not None
crashlib = importlib.util.module_from_spec(_cspec)
sys.modules["skiff_crashlib"] = crashlib  # dataclasses look their module up
_cspec.loader.exec_module(crashlib)
stop_daemon = crashlib.stop_daemon


@pytest.fixture(scope="session")
def skiffd(helper_env: dict[str, str], busybox_rootfs: Path) -> Iterator[Any]:
    """The daemon suite's test skiffd (same start), stopped with its bridges and nft tables
    removed: skiffd keeps its networks on shutdown, a test's daemon must not leave them."""
    if not os.path.exists(daemon_conftest.DOCKER):
        pytest.skip("the docker CLI is not installed")
    root = Path(tempfile.mkdtemp(prefix="skh-", dir="/tmp"))  # short: unix socket paths
    d = daemon_conftest.start_daemon(
        root, helper_env, daemon_conftest.default_runtime_args(), busybox_rootfs
    )
    try:
        yield d
    finally:
        stop_daemon(d)
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class HostSnapshot:
    """What an escape must not change: the host's hostname, its clock, a sentinel file."""

    hostname: str
    wall_minus_mono: float
    sentinel: Path
    sentinel_bytes: bytes

    @classmethod
    def take(cls, sentinel: Path) -> HostSnapshot:
        return cls(
            socket.gethostname(), time.time() - time.monotonic(), sentinel, sentinel.read_bytes()
        )

    def assert_unchanged(self) -> None:
        assert socket.gethostname() == self.hostname, "the host's hostname changed"
        drift = abs((time.time() - time.monotonic()) - self.wall_minus_mono)
        assert drift < 5, f"the host's clock moved by {drift:.1f}s"
        assert self.sentinel.read_bytes() == self.sentinel_bytes, f"{self.sentinel} changed"


@pytest.fixture
def host_snapshot(tmp_path: Path) -> Iterator[HostSnapshot]:
    sentinel = tmp_path / f"sentinel-{uuid.uuid4().hex[:8]}"
    sentinel.write_bytes(os.urandom(64))
    snap = HostSnapshot.take(sentinel)
    yield snap
    snap.assert_unchanged()


# ---- raw HTTP on the daemon's unix socket (the docker CLI hides status codes) ----------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


@dataclass
class Reply:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def message(self) -> str:
        try:
            data = self.json()
        except ValueError:
            return self.body.decode(errors="replace")
        return str(data.get("message", "")) if isinstance(data, dict) else ""


def request(
    sock: str,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    content_type: str = "application/json",
    timeout: float = 30,
    headers: dict[str, str] | None = None,
) -> Reply:
    conn = _UnixConnection(sock, timeout)
    try:
        hdrs = {"Content-Type": content_type, **(headers or {})}
        try:
            conn.request(method, path, body=body, headers=hdrs)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (a refused oversized body) and closed: read that answer
        resp = conn.getresponse()
        return Reply(resp.status, resp.read())
    finally:
        conn.close()


class Api:
    """`api("POST", "/containers/create", body)` against the test skiffd."""

    def __init__(self, sock: str) -> None:
        self.sock = sock

    def __call__(self, method: str, path: str, body: bytes | None = None, **kw: Any) -> Reply:
        return request(self.sock, method, path, body, **kw)


@pytest.fixture
def api(skiffd: Any) -> Api:
    return Api(str(skiffd.socket))
