"""Real dockerd (Debian docker.io) and the docker CLI against `skiff registry serve`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .conftest import helpers


def seed(reg, layout: Path, repo: str) -> None:
    r = subprocess.run(
        [
            "skopeo",
            "copy",
            "--dest-tls-verify=false",
            f"oci:{layout}:latest",
            f"docker://{reg.host}/{repo}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr


def test_docker_pull_push_pull(tmp_path: Path, busybox_layout, dockerd):
    layout, digest = busybox_layout
    with helpers.skiff_registry(tmp_path, "--quiet") as reg:
        seed(reg, layout, "library/busybox:latest")
        out = dockerd.docker("pull", f"{reg.host}/library/busybox:latest").stdout
        assert f"Digest: {digest}" in out and "Downloaded newer image" in out
        dockerd.docker("tag", f"{reg.host}/library/busybox:latest", f"{reg.host}/team/app:1")
        out = dockerd.docker("push", f"{reg.host}/team/app:1").stdout
        assert "Mounted from library/busybox" in out or "Pushed" in out
        pushed = out.strip().splitlines()[-1]
        assert pushed.startswith("1: digest: sha256:"), out
        pushed_digest = pushed.split()[2]
        dockerd.docker("rmi", f"{reg.host}/team/app:1", f"{reg.host}/library/busybox:latest")
        out = dockerd.docker("pull", f"{reg.host}/team/app:1").stdout
        assert f"Digest: {pushed_digest}" in out
        info = json.loads(dockerd.docker("image", "inspect", f"{reg.host}/team/app:1").stdout)[0]
        assert info["Architecture"] == "amd64" and info["RepoDigests"] == [
            f"{reg.host}/team/app@{pushed_digest}"
        ]
        # The registry's own view agrees.
        r = subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reg.host}/team/app:1"],
            capture_output=True,
            text=True,
        )
        assert (
            json.loads(r.stdout)["mediaType"]
            == "application/vnd.docker.distribution.manifest.v2+json"
        )
        dockerd.docker("rmi", f"{reg.host}/team/app:1")


def test_docker_login_with_htpasswd_basic_and_token(tmp_path: Path, busybox_layout, dockerd):
    layout, _ = busybox_layout
    htpasswd = helpers.write_htpasswd(tmp_path / "htpasswd", "dave", "pa55word")
    for extra in ((), ("--token-auth",)):
        with helpers.skiff_registry(
            tmp_path, "--quiet", "--htpasswd", str(htpasswd), *extra
        ) as reg:
            bad = dockerd.docker(
                "login", "-u", "dave", "--password-stdin", reg.host, input=b"wrong\n", check=False
            )
            assert bad.returncode != 0 and "unauthorized" in (bad.stderr + bad.stdout).lower()
            ok = dockerd.docker(
                "login", "-u", "dave", "--password-stdin", reg.host, input=b"pa55word\n"
            )
            assert "Login Succeeded" in ok.stdout
            # Logged in, docker can push and pull through basic or token auth.
            subprocess.run(
                [
                    "skopeo",
                    "copy",
                    "--dest-tls-verify=false",
                    "--dest-creds",
                    "dave:pa55word",
                    f"oci:{layout}:latest",
                    f"docker://{reg.host}/private/bb:1",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
            dockerd.docker("pull", f"{reg.host}/private/bb:1")
            dockerd.docker("tag", f"{reg.host}/private/bb:1", f"{reg.host}/private/bb:2")
            dockerd.docker("push", f"{reg.host}/private/bb:2")
            dockerd.docker("logout", reg.host)
            dockerd.docker("rmi", f"{reg.host}/private/bb:1", f"{reg.host}/private/bb:2")
            denied = dockerd.docker("pull", f"{reg.host}/private/bb:2", check=False)
            assert denied.returncode != 0
