"""`import --change HEALTHCHECK …` makes the same `Config.Healthcheck` in skiff as in Debian's
dockerd 20.10, and both refuse the same malformed ones."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from skiff.errors import InvalidArgument
from skiff.images.store import ImageStore

GOOD = [
    'HEALTHCHECK --interval=5s --timeout=1m30s --retries=3 CMD ["wget", "-q", "x"]',
    "HEALTHCHECK --start-period=500ms CMD test -f /ok || exit 1",
    "HEALTHCHECK --interval=1h2m3.5s CMD true",
    "HEALTHCHECK NONE",
]
BAD = [
    "HEALTHCHECK CMD",
    "HEALTHCHECK PING x",
    "HEALTHCHECK --interval=5 CMD true",
    "HEALTHCHECK --bogus=1 CMD true",
]


def _rootfs(path: Path) -> Path:
    with tarfile.open(path, "w") as tar:
        ti = tarfile.TarInfo("hello")
        ti.size = 3
        tar.addfile(ti, io.BytesIO(b"hi\n"))
    return path


def test_change_healthcheck_matches_dockerd(dockerd, tmp_path: Path) -> None:
    rootfs = _rootfs(tmp_path / "rootfs.tar")
    store = ImageStore(tmp_path / "skiff")
    for i, change in enumerate(GOOD):
        tag = f"hc-change:{i}"
        dockerd.docker("import", "--change", change, str(rootfs), tag)
        try:
            want = dockerd.inspect(tag)["Config"]["Healthcheck"]
        finally:
            dockerd.docker("rmi", tag, check=False)
        with open(rootfs, "rb") as f:
            image_id = store.import_rootfs(f, tag, [change])
        assert store.inspect(image_id)["Config"]["Healthcheck"] == want, change
    for change in BAD:
        r = dockerd.docker("import", "--change", change, str(rootfs), "hc-change:bad", check=False)
        assert r.returncode != 0, change
        with open(rootfs, "rb") as f, pytest.raises(InvalidArgument):
            store.import_rootfs(f, "hc-change:bad", [change])
