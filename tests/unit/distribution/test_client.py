"""The registry client against the in-process registry: pull, push, auth, resume, failures."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
from pathlib import Path

import pytest

from skiff.content.store import ContentStore
from skiff.distribution import auth, client
from skiff.distribution.credentials import AuthConfig
from skiff.errors import InvalidArgument, NotFound, Unavailable
from skiff.types.digest import Digest

from .conftest import start

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def local_image(store: ContentStore, layers: list[bytes]) -> tuple[Digest, bytes]:
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": str(store.ingest(config, Digest.of_bytes(config))),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": str(store.ingest(layer, Digest.of_bytes(layer))),
                "size": len(layer),
            }
            for layer in layers
        ],
    }
    data = json.dumps(manifest).encode()
    return store.ingest(data, Digest.of_bytes(data)), data


def test_push_then_pull_round_trip_with_progress(registry, store, tmp_path):
    layers = [os.urandom(300_000), os.urandom(5000)]
    digest, _ = local_image(store, layers)
    msgs: list[dict] = []
    pushed = client.push(
        f"{registry.host}/app/one:v1", store, digest, OCI_MANIFEST, progress=msgs.append
    )
    assert pushed == digest
    statuses = [m["status"] for m in msgs]
    assert statuses[0] == f"The push refers to repository [{registry.host}/app/one]"
    assert statuses.count("Pushed") == 2 and "Preparing" in statuses
    assert msgs[-1]["aux"] == {"Tag": "v1", "Digest": str(digest), "Size": store.size(digest)}
    # Again: everything is there already.
    msgs.clear()
    client.push(f"{registry.host}/app/one:v1", store, digest, OCI_MANIFEST, progress=msgs.append)
    assert [m["status"] for m in msgs].count("Layer already exists") == 2

    fresh = ContentStore(tmp_path / "fresh")
    msgs.clear()
    result = client.pull(f"{registry.host}/app/one:v1", fresh, progress=msgs.append)
    assert result.manifest_digest == digest and result.media_type == OCI_MANIFEST
    assert [layer.digest for layer in result.layers] == [Digest.of_bytes(x) for x in layers]
    for x in layers:
        assert fresh.read(Digest.of_bytes(x)) == x
    assert fresh.has(digest) and fresh.has(result.config_digest)
    statuses = [m["status"] for m in msgs]
    assert statuses[0] == "Pulling from app/one" and msgs[0]["id"] == "v1"
    assert statuses.count("Pulling fs layer") == 2 and statuses.count("Download complete") == 2
    assert "Verifying Checksum" in statuses
    dl = [m for m in msgs if m["status"] == "Downloading"]
    assert dl and dl[-1]["progressDetail"]["current"] == dl[-1]["progressDetail"]["total"]
    assert dl[-1]["progress"].startswith("[" + "=" * 50 + ">]")
    assert statuses[-2:] == [
        f"Digest: {digest}",
        f"Status: Downloaded newer image for {registry.host}/app/one:v1",
    ]
    msgs.clear()
    client.pull(f"{registry.host}/app/one:v1", fresh, progress=msgs.append)
    assert msgs[-1]["status"] == f"Status: Image is up to date for {registry.host}/app/one:v1"


def test_chunked_push_and_cross_repo_mount(registry, store):
    digest, _ = local_image(store, [os.urandom(100_000)])
    client.push(f"{registry.host}/src:v1", store, digest, OCI_MANIFEST, chunk_size=16384)
    msgs: list[dict] = []
    layer = json.loads(store.read(digest))["layers"][0]["digest"]
    client.push(
        f"{registry.host}/dst:v1",
        store,
        digest,
        OCI_MANIFEST,
        progress=msgs.append,
        mount_from={layer: ["src"]},
    )
    assert {"status": "Mounted from src", "progressDetail": {}, "id": layer[7:19]} in msgs


def test_pull_selects_platform_from_index(registry, store, tmp_path):
    amd, amd_body = registry.push_image("multi", "amd", [b"amd64 layer"])
    arm, arm_body = registry.push_image("multi", "arm", [b"arm64 layer"])
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": arm,
                "size": len(arm_body),
                "platform": {"os": "linux", "architecture": "arm64"},
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": amd,
                "size": len(amd_body),
                "platform": {"os": "linux", "architecture": "amd64"},
            },
        ],
    }
    body = json.dumps(index).encode()
    assert (
        registry.request(
            "PUT", "/v2/multi/manifests/latest", body, {"Content-Type": OCI_INDEX}
        ).status
        == 201
    )
    result = client.pull(f"{registry.host}/multi", store)
    assert str(result.manifest_digest) == amd
    assert result.index_digest == Digest.of_bytes(body)
    assert store.read(result.layers[0].digest) == b"amd64 layer"
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
        client.pull(f"{registry.host}/multi", ContentStore(tmp_path / "c2"), platform="linux/s390x")


def test_pull_unknown_manifest(registry, store):
    with pytest.raises(NotFound, match="manifest unknown"):
        client.pull(f"{registry.host}/nothing:here", store)


def test_pull_of_corrupted_blob_commits_nothing(registry, store):
    digest, _ = registry.push_image("bad", "v1", [b"good layer content"])
    layer = Digest.of_bytes(b"good layer content")
    blob = registry.root / "blobs" / "sha256" / layer.hex[:2] / layer.hex
    blob.write_bytes(b"evil layer content")  # same size, other bytes
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        client.pull(f"{registry.host}/bad:v1", store)
    assert not store.has(layer)
    assert not store.has(Digest.parse(digest))
    assert list(store.ingests()) == []


def _cut_after(registry, nbytes: int, times: int) -> list[str]:
    """Make blob GETs send `nbytes` and drop the connection, `times` times. Returns Range log."""
    base = registry.__dict__.setdefault("original_handler", registry.server.RequestHandlerClass)
    ranges: list[str] = []
    left = [times]

    class Cutting(base):  # type: ignore[misc,valid-type]
        def _blob_get(self, params):
            ranges.append(self.headers.get("Range") or "")
            if self.command == "GET" and left[0] > 0 and params["digest"].startswith("sha256:"):
                d = Digest.parse(params["digest"])
                f = self.registry.storage.open_blob(params["name"], d)
                size = os.fstat(f.fileno()).st_size
                if size > nbytes * 2:
                    left[0] -= 1
                    self._send(
                        200, {"Content-Length": str(size)}, content_type="application/octet-stream"
                    )
                    self.wfile.write(f.read(nbytes))
                    f.close()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                f.close()
            super()._blob_get(params)

    registry.server.RequestHandlerClass = Cutting
    return ranges


def test_pull_cut_off_mid_layer_resumes_with_range(registry, store):
    data = os.urandom(400_000)
    registry.push_image("cut", "v1", [data])
    ranges = _cut_after(registry, 100_000, times=2)
    result = client.pull(f"{registry.host}/cut:v1", store, retries=3)
    assert store.read(result.layers[0].digest) == data
    assert "bytes=100000-" in ranges


def test_pull_that_keeps_failing_leaves_nothing_visible_then_resumes(registry, store):
    data = os.urandom(400_000)
    digest, _ = registry.push_image("cut", "v1", [data])
    _cut_after(registry, 100_000, times=100)
    with pytest.raises(Unavailable, match="download failed"):
        client.pull(f"{registry.host}/cut:v1", store, retries=1)
    assert not store.has(Digest.of_bytes(data)) and not store.has(Digest.parse(digest))
    [(_ref, partial)] = list(store.ingests())
    assert partial >= 100_000
    # Registry healthy again: the next pull resumes the ingest.
    ranges = _cut_after(registry, 100_000, times=0)
    client.pull(f"{registry.host}/cut:v1", store)
    assert store.read(Digest.of_bytes(data)) == data
    assert any(r.startswith("bytes=") for r in ranges)


@pytest.fixture
def token_registry(tmp_path):
    h = tmp_path / "htpasswd"
    h.write_text(f"alice:{auth.hash_password('wonderland', rounds=4)}\n")
    yield from start(tmp_path, htpasswd=h, token={"key": "k"})


def test_bearer_challenge_token_retry_and_login(token_registry, store, tmp_path):
    creds = AuthConfig(username="alice", password="wonderland")
    digest, _ = local_image(store, [b"secret layer"])
    client.push(f"{token_registry.host}/private:v1", store, digest, OCI_MANIFEST, auth=creds)
    fresh = ContentStore(tmp_path / "fresh")
    client.pull(f"{token_registry.host}/private:v1", fresh, auth=creds)
    assert fresh.has(digest)
    with pytest.raises(InvalidArgument, match="unauthorized"):
        client.pull(
            f"{token_registry.host}/private:v1",
            ContentStore(tmp_path / "x"),
            auth=AuthConfig(username="alice", password="bad"),
        )
    assert client.login(token_registry.host, "alice", "wonderland") == {
        "Status": "Login Succeeded",
        "IdentityToken": "",
    }
    with pytest.raises(InvalidArgument, match="incorrect username or password"):
        client.login(token_registry.host, "alice", "nope")


def test_basic_auth_and_docker_config(tmp_path, store, monkeypatch):
    h = tmp_path / "htpasswd"
    h.write_text(f"bob:{auth.hash_password('builder', rounds=4)}\n")
    gen = start(tmp_path, htpasswd=h)
    reg = next(gen)
    try:
        digest, _ = local_image(store, [b"layer"])
        with pytest.raises(InvalidArgument, match="unauthorized"):
            client.push(f"{reg.host}/b:v1", store, digest, OCI_MANIFEST)
        cfg = tmp_path / "dockercfg"
        cfg.mkdir()
        (cfg / "config.json").write_text(
            json.dumps({"auths": {reg.host: {"auth": base64.b64encode(b"bob:builder").decode()}}})
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
        assert client.push(f"{reg.host}/b:v1", store, digest, OCI_MANIFEST) == digest
        assert client.login(reg.host, "bob", "builder")["Status"] == "Login Succeeded"
        with pytest.raises(InvalidArgument):
            client.login(reg.host, "bob", "wrong")
    finally:
        gen.close()


def test_progress_bar_format():
    assert client.progress_bar(0, 100) == "[>" + " " * 50 + "]       0B/100B"
    assert client.progress_bar(1_036_078, 1_036_078).endswith("]  1.036MB/1.036MB")
    assert client.human_size(772_800) == "772.8kB"


def test_insecure_rules():
    assert client.is_insecure("127.0.0.1:5000")
    assert client.is_insecure("localhost:5000")
    assert not client.is_insecure("10.1.2.3:5000")
    assert client.is_insecure("10.1.2.3:5000", {"10.0.0.0/8"})
    assert client.is_insecure("myreg:5000", {"myreg:5000"})
    assert client.registry_host("docker.io") == "registry-1.docker.io"


def test_manifest_digest_is_verified(registry, store):
    digest, body = registry.push_image("v", "v1", [b"l"])
    d = Digest.parse(digest)
    (registry.root / "blobs" / "sha256" / d.hex[:2] / d.hex).write_bytes(
        body.replace(b'"schemaVersion": 2', b'"schemaVersion":  2')
    )
    with pytest.raises(InvalidArgument, match="manifest digest mismatch"):
        client.pull(f"{registry.host}/v@{digest}", store)
    assert hashlib.sha256(body).hexdigest() == d.hex


def test_registry_mirror_serves_docker_io_pulls(registry, store):
    registry.push_image("library/mirrored", "latest", [b"from the mirror"])
    result = client.pull("mirrored", store, mirrors=[f"http://{registry.host}"])
    assert str(result.reference) == "docker.io/library/mirrored:latest"
    assert store.read(result.layers[0].digest) == b"from the mirror"


def test_tls_registry_with_insecure_client(tmp_path, store):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    gen = start(tmp_path, tls_cert=cert, tls_key=key)
    reg = next(gen)
    try:
        digest, _ = local_image(store, [b"over tls"])
        client.push(f"{reg.host}/tls:v1", store, digest, OCI_MANIFEST)
        fresh = ContentStore(tmp_path / "fresh")
        assert client.pull(f"{reg.host}/tls:v1", fresh).manifest_digest == digest
        s = client.Session(reg.host, insecure=True)
        assert s.scheme() == "https"
    finally:
        gen.close()


def test_two_concurrent_pulls_into_one_store(registry, store):
    import threading

    registry.push_image("conc", "v1", [os.urandom(1 << 20), os.urandom(1 << 20)])
    results, errors = [], []

    def go():
        try:
            results.append(client.pull(f"{registry.host}/conc:v1", store))
        except Exception as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 3
    assert all(store.has(layer.digest) for layer in results[0].layers)
