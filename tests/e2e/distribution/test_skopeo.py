"""skopeo (containers/image) against `skiff registry serve`: copy both ways, inspect."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import helpers

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")


def skopeo(*args: str) -> str:
    r = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"skopeo {' '.join(args)}: {r.stderr}"
    return r.stdout


def test_skopeo_copy_both_ways_and_inspect(tmp_path: Path, busybox_layout):
    layout, digest = busybox_layout
    with helpers.skiff_registry(tmp_path, "--quiet") as reg:
        skopeo(
            "copy",
            "--dest-tls-verify=false",
            f"oci:{layout}:latest",
            f"docker://{reg.host}/library/busybox:1.0",
        )
        info = json.loads(
            skopeo("inspect", "--tls-verify=false", f"docker://{reg.host}/library/busybox:1.0")
        )
        assert info["Digest"] == digest
        assert info["Architecture"] == "amd64" and info["RepoTags"] == ["1.0"]
        raw = json.loads(
            skopeo(
                "inspect", "--raw", "--tls-verify=false", f"docker://{reg.host}/library/busybox:1.0"
            )
        )
        assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        # Registry to registry (mount or re-upload within the same registry), then back to disk.
        skopeo(
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{reg.host}/library/busybox:1.0",
            f"docker://{reg.host}/copies/busybox:2",
        )
        out = tmp_path / "out"
        skopeo(
            "copy",
            "--src-tls-verify=false",
            f"docker://{reg.host}/copies/busybox:2",
            f"oci:{out}:pulled",
        )
        index = json.loads((out / "index.json").read_text())
        assert index["manifests"][0]["digest"] == digest
        for layer in raw["layers"]:
            blob = out / "blobs" / "sha256" / layer["digest"].split(":")[1]
            assert blob.stat().st_size == layer["size"]
        dirout = tmp_path / "dirout"
        skopeo(
            "copy",
            "--src-tls-verify=false",
            "--format",
            "v2s2",
            f"docker://{reg.host}/copies/busybox:2",
            f"dir:{dirout}",
        )
        # A docker schema2 copy pushed back: Docker media types round-trip too.
        skopeo(
            "copy",
            "--dest-tls-verify=false",
            f"dir:{dirout}",
            f"docker://{reg.host}/docker/busybox:v2s2",
        )
        raw2 = json.loads(
            skopeo(
                "inspect", "--raw", "--tls-verify=false", f"docker://{reg.host}/docker/busybox:v2s2"
            )
        )
        assert raw2["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
        tags = json.loads(
            skopeo("list-tags", "--tls-verify=false", f"docker://{reg.host}/library/busybox")
        )
        assert tags["Tags"] == ["1.0"]
