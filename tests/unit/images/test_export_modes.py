"""`export` tars carry the file-type bits in each header's mode, as Docker's pkg/archive writes
them (0o120777 for a symlink); layer tars keep plain permission bits."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from skiff.images.layer import tree_to_tar
from skiff.images.rootfs import export_merged


def _raw_modes(data: bytes) -> dict[str, int]:
    """name → the mode field exactly as written in each ustar header (checksums verified)."""
    modes = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # raises on a bad checksum
        for ti in tar:
            modes[ti.name] = ti.mode
    off = 0
    raw = {}
    while off < len(data):
        h = data[off : off + 512]
        if h == bytes(512):
            break
        size = int(h[124:136].rstrip(b"\0 ") or b"0", 8)
        if h[156:157] not in (b"x", b"g"):
            raw[h[:100].rstrip(b"\0").decode().rstrip("/")] = int(h[100:108].rstrip(b"\0 "), 8)
        off += 512 + (size + 511) // 512 * 512
    assert raw == {k.rstrip("/"): v for k, v in modes.items()}
    return raw


def _tree(root: Path) -> Path:
    (root / "d").mkdir(parents=True)
    os.chmod(root / "d", 0o4755)
    (root / "d" / "f").write_text("x")
    os.chmod(root / "d" / "f", 0o640)
    os.link(root / "d" / "f", root / "d" / "hard")
    os.symlink("/nowhere", root / "d" / "l")
    os.mkfifo(root / "d" / "p", 0o600)
    return root


def test_export_modes_have_type_bits(tmp_path: Path) -> None:
    root = _tree(tmp_path / "r")
    out = io.BytesIO()
    export_merged([root], out)
    assert _raw_modes(out.getvalue()) == {
        "d": 0o044755,
        "d/f": 0o100640,
        "d/hard": 0o100640,
        "d/l": 0o120777,
        "d/p": 0o010600,
    }


def test_layer_tars_keep_permission_bits_only(tmp_path: Path) -> None:
    root = _tree(tmp_path / "r")
    out = io.BytesIO()
    tree_to_tar(root, out)
    assert _raw_modes(out.getvalue()) == {
        "d": 0o4755,
        "d/f": 0o640,
        "d/hard": 0o640,
        "d/l": 0o777,
        "d/p": 0o600,
    }
