"""docker-py's networks and volumes collections against a test skiffd."""

from __future__ import annotations

from typing import Any

import pytest

docker = pytest.importorskip("docker")


def test_networks_and_volumes_collections(netd: Any) -> None:
    client = docker.DockerClient(base_url=netd.host)
    net = client.networks.create("pynet", labels={"team": "a"})
    vol = client.volumes.create("pyvol", labels={"k": "v"})
    try:
        assert net.name == "pynet" and client.networks.get("pynet").id == net.id
        assert [n.name for n in client.networks.list(filters={"label": "team=a"})] == ["pynet"]
        out = client.containers.run(
            "busybox",
            "sh -c 'echo hi > /v/x; cat /v/x'",
            network="pynet",
            volumes={"pyvol": {"bind": "/v", "mode": "rw"}},
            remove=True,
        )
        assert out == b"hi\n"
        assert client.volumes.get("pyvol").attrs["Labels"] == {"k": "v"}
        with pytest.raises(docker.errors.NotFound):
            client.networks.get("nope")
        with pytest.raises(docker.errors.APIError) as exc:
            client.networks.create("pynet")
        assert exc.value.status_code == 409
    finally:
        net.remove()
        vol.remove()
    assert "pynet" not in [n.name for n in client.networks.list()]
