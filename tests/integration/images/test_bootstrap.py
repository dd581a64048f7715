"""Offline base images: busybox from the host's busybox-static (always), Debian via
debootstrap (opt-in: SKIFF_TEST_DEBOOTSTRAP=1, needs a reachable Debian mirror, ~1 min)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skiff.errors import Unavailable
from skiff.images.store import ImageStore


def test_bootstrap_busybox_is_deterministic(tmp_path: Path, mounter) -> None:
    a = ImageStore(tmp_path / "a").bootstrap_busybox()
    store = ImageStore(tmp_path / "b")
    assert store.bootstrap_busybox("bb:1") == a
    info = store.inspect("bb:1")
    assert info["Config"]["Cmd"] == ["sh"] and any(
        e.startswith("PATH=") for e in info["Config"]["Env"]
    )
    root = mounter.mount(store.prepare_container_rootfs(a, "c"), tmp_path / "m")
    assert os.readlink(root / "bin" / "sh") == "/bin/busybox"
    assert (root / "bin" / "busybox").stat().st_size > 100_000
    assert "root:x:0:0" in (root / "etc" / "passwd").read_text()


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("SKIFF_TEST_DEBOOTSTRAP") != "1",
    reason="set SKIFF_TEST_DEBOOTSTRAP=1 (needs a Debian mirror, ~1 min)",
)
def test_bootstrap_debian(tmp_path: Path, mounter) -> None:
    store = ImageStore(tmp_path / "root")
    try:
        image_id = store.bootstrap_debian("bookworm")
    except Unavailable as e:
        pytest.skip(str(e))
    assert store.resolve("debian:bookworm").id == image_id
    root = mounter.mount(store.prepare_container_rootfs(image_id, "c"), tmp_path / "m")
    assert "bookworm" in (root / "etc" / "os-release").read_text()
    assert (root / "usr" / "bin" / "apt-get").exists()


def test_bootstrap_debian_unreachable_mirror_says_so(tmp_path: Path) -> None:
    from skiff.images.bootstrap import bootstrap_debian

    store = ImageStore(tmp_path / "root")
    with pytest.raises(Unavailable) as exc:
        bootstrap_debian(store, "bookworm", mirror="http://127.0.0.1:9/debian")
    assert "debootstrap from http://127.0.0.1:9/debian failed" in str(exc.value)
