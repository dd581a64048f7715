"""`python -m skiff.distribution.server serve|gc` as a process: config file, gc, interrupted uploads."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import subprocess
from pathlib import Path

from .helpers import PYTHON, skiff_registry, write_htpasswd


def req(host, method, path, body=None, headers=None):
    c = http.client.HTTPConnection(host, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.headers, r.read()
    finally:
        c.close()


def test_config_file_auth_and_manifest_limit(tmp_path: Path):
    htpasswd = write_htpasswd(tmp_path / "htpasswd", "erin", "pw")
    cfg = tmp_path / "registry.json"
    cfg.write_text(json.dumps({"auth": {"htpasswd": str(htpasswd)}, "max_manifest_size": 1000}))
    with skiff_registry(tmp_path, "--quiet", "--config", str(cfg)) as reg:
        assert req(reg.host, "GET", "/v2/")[0] == 401
        auth = {"Authorization": "Basic " + base64.b64encode(b"erin:pw").decode()}
        assert req(reg.host, "GET", "/v2/", headers=auth)[0] == 200
        status, _, body = req(
            reg.host,
            "PUT",
            "/v2/a/manifests/t",
            b"{" + b" " * 2000 + b"}",
            {**auth, "Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert status == 413 and json.loads(body)["errors"][0]["code"] == "SIZE_INVALID"


def test_interrupted_upload_is_invisible_and_gc_command(tmp_path: Path):
    with skiff_registry(tmp_path, "--quiet") as reg:
        data = b"x" * 100_000
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        _, h, _ = req(reg.host, "POST", "/v2/a/blobs/uploads/")
        # Send half the announced body, then drop the connection.
        c = http.client.HTTPConnection(reg.host)
        c.putrequest("PATCH", h["Location"])
        c.putheader("Content-Length", str(len(data)))
        c.endheaders()
        c.send(data[:50_000])
        c.close()
        assert req(reg.host, "HEAD", f"/v2/a/blobs/{d}")[0] == 404
        assert not any(p.is_file() for p in (reg.root / "blobs").rglob("*"))
        orphan = b"orphan"
        od = "sha256:" + hashlib.sha256(orphan).hexdigest()
        assert req(reg.host, "POST", f"/v2/a/blobs/uploads/?digest={od}", orphan)[0] == 201
        out = subprocess.run(
            [
                PYTHON,
                "-m",
                "skiff.distribution.server",
                "gc",
                "--root",
                str(reg.root),
                "--grace",
                "0",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"blob eligible for deletion: {od}" in out
        assert req(reg.host, "HEAD", f"/v2/a/blobs/{od}")[0] == 404
