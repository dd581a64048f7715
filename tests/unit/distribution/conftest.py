"""An in-process registry on a loopback port, and a tiny HTTP helper to talk to it."""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from skiff.distribution.server import Config, RegistryServer, make_server


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def codes(self) -> list[str]:
        return [e["code"] for e in self.json()["errors"]]


class Registry:
    def __init__(self, server: RegistryServer, root: Path) -> None:
        self.server = server
        self.root = root
        self.host = f"127.0.0.1:{server.server_address[1]}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection(self.host, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Reply(r.status, r.headers, r.read())
        finally:
            conn.close()

    def push_blob(self, repo: str, data: bytes, headers: dict[str, str] | None = None) -> str:
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/?digest={d}", data, headers)
        assert r.status == 201, r.body
        return d

    def push_image(
        self, repo: str, tag: str, layers: list[bytes], **extra: Any
    ) -> tuple[str, bytes]:
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
        ).encode()
        cd = self.push_blob(repo, config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": cd,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": self.push_blob(repo, layer),
                    "size": len(layer),
                }
                for layer in layers
            ],
            **extra,
        }
        body = json.dumps(manifest).encode()
        r = self.request(
            "PUT", f"/v2/{repo}/manifests/{tag}", body, {"Content-Type": manifest["mediaType"]}
        )
        assert r.status == 201, r.body
        return r.headers["Docker-Content-Digest"], body


def start(tmp_path: Path, **config: Any) -> Iterator[Registry]:
    root = tmp_path / "registry"
    server = make_server(Config(root=root, **config), "127.0.0.1", 0, quiet=True)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield Registry(server, root)
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    yield from start(tmp_path)
