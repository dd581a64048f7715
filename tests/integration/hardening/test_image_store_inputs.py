"""Malicious layer tars straight into ImageStore.load (no daemon): refused with an error from the
closed set, or contained — never a stray exception, never a byte outside the data root."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from skiff.errors import SkiffError

DEEP = "../" * 24


def _add(tar: tarfile.TarFile, name: str, *, data: bytes = b"", **kw: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = kw.pop("mode", 0o644)
    for k, v in kw.items():
        setattr(info, k, v)
    info.size = len(data) if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    tar.addfile(info, io.BytesIO(data) if info.size else None)
    return info


def _tar(build: Callable[[tarfile.TarFile], object]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    return buf.getvalue()


def docker_archive(layer: bytes, tag: str) -> bytes:
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": name, "RepoTags": [tag], "Layers": ["l/layer.tar"]}]).encode()

    def build(t: tarfile.TarFile) -> None:
        _add(t, "l/layer.tar", data=layer)
        _add(t, name, data=config)
        _add(t, "manifest.json", data=manifest)

    return _tar(build)


@pytest.fixture
def target() -> Iterator[Path]:
    d = Path(f"/tmp/skiff-hardening-store-{uuid.uuid4().hex[:8]}")
    d.mkdir()
    secret = d / "secret"
    secret.write_bytes(b"host secret\n")
    try:
        yield d
    finally:
        for p in sorted(d.rglob("*"), reverse=True):
            p.unlink() if not p.is_dir() or p.is_symlink() else p.rmdir()
        d.rmdir()


def _load(tmp_path: Path, layer: bytes) -> tuple[Any, list[str] | SkiffError]:
    from skiff.images.store import ImageStore

    store = ImageStore(tmp_path / "data")
    try:
        return store, store.load(io.BytesIO(docker_archive(layer, f"evil:{uuid.uuid4().hex[:6]}")))
    except SkiffError as err:  # refused: fine, as long as it is from the closed set
        return store, err


def _untouched(target: Path) -> None:
    assert sorted(p.name for p in target.iterdir()) == ["secret"], "a layer wrote outside the store"
    assert (target / "secret").read_bytes() == b"host secret\n"
    assert os.stat(target / "secret").st_nlink == 1, "a layer hard-linked a host file"


CASES: dict[str, Callable[[Path], Callable[[tarfile.TarFile], object]]] = {
    "dotdot": lambda t: lambda tar: _add(tar, DEEP + str(t / "pwned").lstrip("/"), data=b"x"),
    "absolute path": lambda t: lambda tar: _add(tar, str(t / "pwned"), data=b"x"),
    "through absolute symlink": lambda t: (
        lambda tar: (
            _add(tar, "link", type=tarfile.SYMTYPE, linkname=str(t)),
            _add(tar, "link/pwned", data=b"x"),
        )
    ),
    "through relative symlink": lambda t: (
        lambda tar: (
            _add(tar, "rel", type=tarfile.SYMTYPE, linkname=DEEP + str(t).lstrip("/")),
            _add(tar, "rel/pwned", data=b"x"),
        )
    ),
    "hardlink out (absolute)": lambda t: (
        lambda tar: _add(tar, "stolen", type=tarfile.LNKTYPE, linkname=str(t / "secret"))
    ),
    "hardlink out (dotdot)": lambda t: (
        lambda tar: _add(
            tar, "stolen", type=tarfile.LNKTYPE, linkname=DEEP + str(t / "secret").lstrip("/")
        )
    ),
    "symlink then hardlink through it": lambda t: (
        lambda tar: (
            _add(tar, "dir", type=tarfile.SYMTYPE, linkname=str(t)),
            _add(tar, "stolen", type=tarfile.LNKTYPE, linkname="dir/secret"),
        )
    ),
    "whiteout escaping": lambda t: (
        lambda tar: _add(tar, DEEP + str(t / ".wh.secret").lstrip("/"), data=b"")
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_layer_is_refused_or_contained(tmp_path: Path, target: Path, case: str) -> None:
    _, result = _load(tmp_path, _tar(CASES[case](target)))
    _untouched(target)
    if isinstance(result, SkiffError):
        assert result.message, case
        return
    # accepted: every file of the unpacked layer lies inside the data root
    data = (tmp_path / "data").resolve()
    for dirpath, dirnames, filenames in os.walk(data):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                continue
            assert str(p.resolve()).startswith(str(data)), p
            if p.is_file():
                assert p.stat().st_ino != (target / "secret").stat().st_ino, (
                    f"{p} is the host secret"
                )


def test_device_nodes_in_a_layer_stay_inside(tmp_path: Path, target: Path) -> None:
    _, result = _load(
        tmp_path,
        _tar(
            lambda t: (
                _add(t, "sda", type=tarfile.BLKTYPE, devmajor=8, devminor=0),
                _add(
                    t,
                    DEEP + str(target / "dev").lstrip("/"),
                    type=tarfile.CHRTYPE,
                    devmajor=1,
                    devminor=1,
                ),
            )
        ),
    )
    _untouched(target)
    if not isinstance(result, SkiffError):  # accepted: the device node lies in the store
        assert list((tmp_path / "data").rglob("sda")), "the block device vanished"
