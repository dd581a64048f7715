"""docker-py (the Docker SDK for Python) against a test skiffd."""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator

import pytest

from .conftest import Daemon

docker = pytest.importorskip("docker")


@pytest.fixture
def client(skiffd: Daemon) -> Iterator[object]:
    c = docker.DockerClient(base_url=skiffd.host, timeout=60)
    yield c
    c.close()


def _name() -> str:
    return f"py-{uuid.uuid4().hex[:8]}"


def test_run_and_wait_and_logs_stream(client: object) -> None:
    out = client.containers.run(
        "busybox", ["sh", "-c", "echo a; echo b >&2"], remove=True, stderr=True
    )
    assert sorted(out.split()) == [b"a", b"b"]
    c = client.containers.run(
        "busybox",
        ["sh", "-c", "for i in 1 2 3; do echo l$i; sleep 0.2; done; exit 9"],
        detach=True,
        name=_name(),
    )
    try:
        lines = list(c.logs(stream=True, follow=True))
        assert b"".join(lines).split() == [b"l1", b"l2", b"l3"]
        assert c.wait(timeout=30)["StatusCode"] == 9
    finally:
        c.remove(force=True)


def test_exec_run_with_demux_and_archives(client: object) -> None:
    c = client.containers.run("busybox", ["sleep", "300"], detach=True, name=_name())
    try:
        code, (out, err) = c.exec_run(
            ["sh", "-c", "echo to-out; echo to-err >&2; exit 3"], demux=True
        )
        assert (code, out, err) == (3, b"to-out\n", b"to-err\n")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = b"archived\n"
            info = tarfile.TarInfo("dropped.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        assert c.put_archive("/tmp", buf.getvalue())
        assert c.exec_run(["cat", "/tmp/dropped.txt"]).output == b"archived\n"
        stream, stat = c.get_archive("/tmp/dropped.txt")
        assert stat["name"] == "dropped.txt" and stat["size"] == 9
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile("dropped.txt")
            assert member is not None and member.read() == b"archived\n"
        stats = c.stats(stream=False)
        assert stats["name"] == "/" + c.name and stats["memory_stats"]["usage"] > 0
        assert stats["pids_stats"]["current"] >= 1
        assert "total_usage" in stats["cpu_stats"]["cpu_usage"]
    finally:
        c.remove(force=True)


def test_images_list_get_tag_remove_save_load(client: object) -> None:
    img = client.images.get("busybox:latest")
    assert "busybox:latest" in img.tags
    assert any("busybox:latest" in i.tags for i in client.images.list())
    tag = f"pytag-{uuid.uuid4().hex[:6]}"
    assert img.tag(tag, "v1")
    assert f"{tag}:v1" in client.images.get(img.id).tags
    data = b"".join(client.images.get(f"{tag}:v1").save(named=f"{tag}:v1"))
    client.images.remove(f"{tag}:v1")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(f"{tag}:v1")
    loaded = client.images.load(data)
    assert any(f"{tag}:v1" in i.tags for i in loaded)
    client.images.remove(f"{tag}:v1")


def test_errors_raise_the_right_exception_classes(client: object) -> None:
    with pytest.raises(docker.errors.NotFound) as nf:
        client.containers.get("no-such-container-xyz")
    assert "No such container: no-such-container-xyz" in str(nf.value)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("no-such-image-xyz:1")
    n = _name()
    c = client.containers.run("busybox", ["sleep", "300"], detach=True, name=n)
    try:
        with pytest.raises(docker.errors.APIError) as conflict:
            client.containers.create("busybox", ["true"], name=n)
        assert conflict.value.status_code == 409
        with pytest.raises(docker.errors.APIError) as running:
            c.remove()
        assert running.value.status_code == 409
        with pytest.raises(docker.errors.APIError) as bad:
            client.api.containers(filters={"no-such-filter": "x"})
        assert bad.value.status_code == 400
    finally:
        c.remove(force=True)
