import os
from pathlib import Path

import pytest

from skiff.images.bootstrap import build_busybox_rootfs


@pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="busybox-static not installed")
def test_busybox_rootfs_has_shell_and_users(tmp_path: Path) -> None:
    root = build_busybox_rootfs(tmp_path / "r")
    assert (root / "bin" / "sh").is_symlink()
    assert os.readlink(root / "bin" / "sh") == "/bin/busybox"
    assert "root:x:0:0" in (root / "etc" / "passwd").read_text()
    assert (root / "tmp").stat().st_mode & 0o1777 == 0o1777
