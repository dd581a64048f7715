"""API fuzzing: schemathesis-generated requests against every operation skiffd serves.

skiffd's own OpenAPI document (src/skiff/api/openapi.yaml) lists the routes it serves but no
schemas; the schemas come from the Docker Engine API v1.47 reference (shared/reference), cut
down to skiffd's routes. For each operation schemathesis (hypothesis underneath) generates
SKIFF_FUZZ_EXAMPLES requests (default 20) — path, query, headers, bodies — sent over the unix
socket to a daemon of its own (operations that would contact a registry are left out: the
suite's traffic stays on loopback). Checks: no 500 (each one reported with its request), no hang
(every answer within 15 s), and the daemon still answers /_ping afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (PyPI) is not installed")
yaml = pytest.importorskip("yaml")

from hypothesis import HealthCheck, given, settings  # noqa: E402  (after the importorskip)

from .conftest import Api, daemon_conftest, request, stop_daemon  # noqa: E402

SERVED = Path(__file__).resolve().parents[3] / "src" / "skiff" / "api" / "openapi.yaml"
EXAMPLES = int(os.environ.get("SKIFF_FUZZ_EXAMPLES", "20"))
# streams that never end by design (they are hijacked or follow until the client leaves), and
# operations that reach out to a registry (the suite sends traffic only to loopback)
SKIPPED = {
    "SystemEvents",
    "ContainerAttach",
    "ContainerAttachWebsocket",
    "SystemAuth",
    "ImageCreate",
    "ImagePush",
    "ImageSearch",
}


def fuzz_schema(reference_dir: Path) -> Any:
    doc = yaml.safe_load((reference_dir / "docker-engine-api-v1.47.yaml").read_text())
    served = yaml.safe_load(SERVED.read_text())["paths"]
    doc["paths"] = {
        path: {
            m: op
            for m, op in ops.items()
            if m in served[path] and op.get("operationId") not in SKIPPED
        }
        for path, ops in doc["paths"].items()
        if path in served
    }
    for ops in doc["paths"].values():
        for op in ops.values():
            # tar bodies: schemathesis has no tar serializer; fuzz them as raw bytes
            if isinstance(op, dict) and "application/x-tar" in (op.get("consumes") or []):
                op["consumes"] = ["application/octet-stream"]
    return schemathesis.openapi.from_dict(doc)


@pytest.fixture(scope="module")
def fuzz_daemon(helper_env: dict[str, str], busybox_rootfs: Path) -> Iterator[Any]:
    """A daemon of its own: fuzzed DELETEs and prunes must not disturb other tests."""
    root = Path(tempfile.mkdtemp(prefix="skf-", dir="/tmp"))
    d = daemon_conftest.start_daemon(
        root, helper_env, daemon_conftest.default_runtime_args(), busybox_rootfs
    )
    try:
        yield d
    finally:
        stop_daemon(d)
        shutil.rmtree(root, ignore_errors=True)


def _send(sock: str, kwargs: dict[str, Any]) -> tuple[int, bytes, str]:
    url = urllib.parse.urlsplit(kwargs["url"])
    params = kwargs.get("params") or {}
    query = params if isinstance(params, str) else urllib.parse.urlencode(params, doseq=True)
    path = url.path + ("?" + query if query else "")
    body: bytes | None = None
    ctype = "application/json"
    if "json" in kwargs:
        body = json.dumps(kwargs["json"]).encode()
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        body = data if isinstance(data, bytes) else str(data).encode()
        ctype = (kwargs.get("headers") or {}).get("Content-Type", "application/octet-stream")
    headers = {
        k: v
        for k, v in (kwargs.get("headers") or {}).items()
        if k.lower() not in ("content-type", "connection")
    }
    reply = request(
        sock, kwargs["method"], path, body, content_type=ctype, timeout=15, headers=headers
    )
    return (
        reply.status,
        reply.body,
        f"{kwargs['method']} {path} body={body[:200] if body else b''!r}",
    )


def test_fuzz_every_operation(reference_dir: Path, fuzz_daemon: Any) -> None:
    schema = fuzz_schema(reference_dir)
    sock = str(fuzz_daemon.socket)
    ops = [result.ok() for result in schema.get_all_operations()]
    assert len(ops) >= 30, f"only {len(ops)} operations to fuzz"
    found_500: list[str] = []
    hangs: list[str] = []
    sent = 0

    for op in ops:

        @given(case=op.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            nonlocal sent
            kwargs = case.as_transport_kwargs(base_url="http://localhost/v1.47")
            sent += 1
            try:
                status, body, what = _send(sock, kwargs)
            except TimeoutError:
                hangs.append(f"{kwargs['method']} {kwargs['url']}")
                return
            # 501 (not implemented yet) and 503 (unavailable) are answers; other 5xx are bugs
            if status >= 500 and status not in (501, 503):
                found_500.append(f"{what} -> {status} {body[:300]!r}")

        run()

    print(f"fuzz: {len(ops)} operations, {sent} requests, {len(found_500)} 5xx, {len(hangs)} hangs")
    ping = Api(sock)("GET", "/_ping")
    assert ping.status == 200 and ping.body == b"OK", "skiffd stopped answering after the fuzz run"
    report = [f"{len(ops)} operations, {sent} requests"]
    assert not hangs, "\n".join([*report, "no answer within 15 s:", *hangs])
    assert not found_500, "\n".join([*report, f"{len(found_500)} answers 5xx:", *found_500[:40]])
