"""docker push / pull / login through skiffd, to and from `skiff registry serve` (issue 5)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.daemon.conftest import Daemon, default_runtime_args, helper_env, start_daemon
from tests.integration.distribution import helpers

__all__ = ["helper_env"]


@pytest.fixture(scope="module")
def regd(helper_env: dict[str, str], busybox_rootfs: Path) -> Iterator[Daemon]:
    root = Path(tempfile.mkdtemp(prefix="skr-", dir="/tmp"))
    d = start_daemon(root, helper_env, default_runtime_args(), busybox_rootfs)
    try:
        yield d
    finally:
        d.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def test_push_then_pull_through_skiffd(regd: Any, tmp_path: Path) -> None:
    d = regd
    with helpers.skiff_registry(tmp_path, "--quiet") as reg:
        ref = f"{reg.host}/team/busybox:v1"
        d.docker("tag", "busybox:latest", ref)
        out = d.docker("push", ref).stdout
        assert "v1: digest: sha256:" in out
        before = json.loads(d.docker("image", "inspect", ref).stdout)[0]
        d.docker("rmi", ref)
        d.docker("rmi", "busybox:latest")
        pulled = d.docker("pull", ref)
        assert "Status: Downloaded newer image" in pulled.stdout or "up to date" in pulled.stdout
        after = json.loads(d.docker("image", "inspect", ref).stdout)[0]
        assert after["Id"] == before["Id"]
        assert after["RootFS"]["Layers"] == before["RootFS"]["Layers"]
        assert d.docker("run", "--rm", ref, "echo", "pulled").stdout == "pulled\n"
        # pushing again finds every blob there already
        again = d.docker("push", ref).stdout
        assert "Layer already exists" in again
        d.docker("tag", ref, "busybox:latest")


def test_login_and_bad_credentials(regd: Any, tmp_path: Path) -> None:
    d = regd
    htpasswd = helpers.write_htpasswd(tmp_path / "htpasswd", "dave", "pa55word")
    with helpers.skiff_registry(tmp_path, "--quiet", "--htpasswd", str(htpasswd)) as reg:
        bad = d.docker(
            "login", reg.host, "-u", "dave", "--password-stdin", input=b"wrong\n", check=False
        )
        assert bad.returncode != 0 and "unauthorized" in bad.stderr.lower()
        ok = d.docker("login", reg.host, "-u", "dave", "--password-stdin", input=b"pa55word\n")
        assert "Login Succeeded" in ok.stdout
        ref = f"{reg.host}/private/busybox:1"
        d.docker("tag", "busybox:latest", ref)
        d.docker("push", ref)
        d.docker("logout", reg.host)
        d.docker("rmi", ref)
        denied = d.docker("pull", ref, check=False)
        assert denied.returncode != 0 and "unauthorized" in denied.stderr.lower()
        assert ref not in d.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout


def test_pull_of_a_missing_image_is_a_clean_error(regd: Any, tmp_path: Path) -> None:
    d = regd
    with helpers.skiff_registry(tmp_path, "--quiet") as reg:
        res = d.docker("pull", f"{reg.host}/nothing/here:1", check=False)
        assert res.returncode != 0
        assert "not found" in res.stderr.lower() or "unknown" in res.stderr.lower()
        images = d.docker("images", "--format", "{{.Repository}}").stdout
        assert "nothing/here" not in images
