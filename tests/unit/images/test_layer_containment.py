"""Malicious layers are contained: no byte lands outside the destination, and the error names
the entry. Runs without root (entries belong to the calling user)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.errors import InvalidArgument
from skiff.images.layer import apply_layer
from skiff.types import mediatypes as mt

UID, GID = os.getuid(), os.getgid()


def _ti(
    name: str, type_: bytes = tarfile.REGTYPE, size: int = 0, linkname: str = "", mode: int = 0o644
) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.size = size
    ti.linkname = linkname
    ti.mode = mode
    ti.uid, ti.gid = UID, GID
    return ti


def build(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
            tf.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def file(name: str, data: bytes = b"payload") -> tuple[tarfile.TarInfo, bytes]:
    return _ti(name), data


def link(name: str, target: str, hard: bool = False) -> tuple[tarfile.TarInfo, bytes]:
    return _ti(name, tarfile.LNKTYPE if hard else tarfile.SYMTYPE, linkname=target), b""


def directory(name: str) -> tuple[tarfile.TarInfo, bytes]:
    return _ti(name, tarfile.DIRTYPE, mode=0o755), b""


class Box:
    """tmp/outside/sentinel (a host file), tmp/root/sentinel beside the snapshot, tmp/root/snap."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.outside = tmp / "outside"
        self.outside.mkdir()
        (self.outside / "sentinel").write_text("host file")
        (self.outside / "dir").mkdir()
        (tmp / "root").mkdir()
        (tmp / "root" / "sentinel").write_text("sibling")
        self.dest = tmp / "root" / "snap"
        self.dest.mkdir()
        self.before = self.state()

    def state(self) -> dict[str, tuple[int, int, str]]:
        out = {}
        for p in self._walk(self.tmp):
            st = os.lstat(p)
            digest = (
                hashlib.sha256(p.read_bytes()).hexdigest()
                if p.is_file() and not p.is_symlink()
                else ""
            )
            out[str(p)] = (st.st_mode, st.st_nlink, digest)
        return out

    def _walk(self, d: Path) -> Iterator[Path]:
        for p in d.iterdir():
            if p == self.dest:
                continue
            yield p
            if p.is_dir() and not p.is_symlink():
                yield from self._walk(p)

    def apply(self, data: bytes) -> None:
        apply_layer(io.BytesIO(data), self.dest, mt.OCI_LAYER, overlay=False)

    def assert_nothing_outside(self) -> None:
        assert self.state() == self.before


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = Box(tmp_path)
    yield b
    b.assert_nothing_outside()


def refused(box: Box, data: bytes, entry: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        box.apply(data)
    assert f"layer entry {entry!r}" in str(exc.value)
    assert why in str(exc.value)
    box.assert_nothing_outside()


def test_dotdot_paths(box: Box) -> None:
    refused(box, build([file("../escape")]), "../escape", "outside")
    refused(box, build([file("a/../../escape")]), "a/../../escape", "outside")
    refused(
        box,
        build([file("ok"), file("../../outside/sentinel", b"overwritten")]),
        "../../outside/sentinel",
        "outside",
    )


def test_absolute_paths_land_inside(box: Box) -> None:
    box.apply(build([file(str(box.outside / "sentinel"), b"inside"), file("/../../x", b"x")]))
    assert (box.dest / str(box.outside / "sentinel").lstrip("/")).read_bytes() == b"inside"
    assert (box.dest / "x").read_bytes() == b"x"


def test_write_through_symlink(box: Box) -> None:
    refused(
        box, build([link("evil", str(box.outside)), file("evil/pwned")]), "evil/pwned", "symlink"
    )
    # a symlink pointing out of the layer is refused on its own (as Docker does)
    refused(box, build([link("up", "../../outside")]), "up", "points outside")
    # a directory replaced by a symlink, then written through
    refused(
        box, build([directory("d/"), link("d", str(box.outside)), file("d/x")]), "d/x", "symlink"
    )


def test_entry_over_a_symlink_replaces_it(box: Box) -> None:
    box.apply(
        build(
            [
                link("s1", str(box.outside)),
                directory("s1/"),
                link("s2", str(box.outside / "sentinel")),
                file("s2", b"mine"),
            ]
        )
    )
    assert (box.dest / "s1").is_dir() and not (box.dest / "s1").is_symlink()
    assert (box.dest / "s2").read_bytes() == b"mine" and not (box.dest / "s2").is_symlink()


def test_hardlink_to_host_file(box: Box) -> None:
    refused(
        box, build([link("hl", str(box.outside / "sentinel"), hard=True)]), "hl", "does not exist"
    )
    refused(box, build([link("hl", "../../outside/sentinel", hard=True)]), "hl", "outside")
    refused(
        box,
        build([link("sl", str(box.outside)), link("hl", "sl/sentinel", hard=True)]),
        "hl",
        "symlink",
    )
    refused(box, build([directory("d/"), link("hl", "d", hard=True)]), "hl", "directory")


def test_duplicate_entries_last_wins(box: Box) -> None:
    box.apply(
        build(
            [
                link("dup", str(box.outside / "sentinel")),
                file("dup", b"second"),
                file("twice", b"one"),
                file("twice", b"two"),
                file("f", b"was a file"),
                directory("f/"),
                file("f/inner", b"in"),
            ]
        )
    )
    assert not (box.dest / "dup").is_symlink() and (box.dest / "dup").read_bytes() == b"second"
    assert (box.dest / "twice").read_bytes() == b"two"
    assert (box.dest / "f").is_dir() and (box.dest / "f" / "inner").read_bytes() == b"in"


def _huge(name: str, claimed: int, present: bytes) -> bytes:
    ti = _ti(name)
    ti.size = claimed
    head = ti.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
    return head + present + b"\0" * 1024


def test_absurd_sizes(box: Box) -> None:
    refused(box, _huge("big", 1 << 40, b"x" * 4096), "big", "more than")  # 1 TiB
    refused(box, _huge("trunc", 200 << 10, b"y" * 4096), "trunc", "truncated")
    # nothing partial was left behind either
    assert not (box.dest / "big").exists() or (box.dest / "big").stat().st_size == 0


def test_whiteout_cannot_escape(box: Box) -> None:
    refused(box, build([file("../.wh.sentinel")]), "../.wh.sentinel", "outside")
    refused(
        box,
        build([link("l", str(box.outside)), file("l/.wh.sentinel")]),
        "l/.wh.sentinel",
        "symlink",
    )
    refused(
        box,
        build([link("l2", str(box.outside)), file("l2/.wh..wh..opq")]),
        "l2/.wh..wh..opq",
        "symlink",
    )


def test_overlay_xattrs_are_not_taken_from_layers(box: Box) -> None:
    ti, data = file("f")
    ti.pax_headers = {"SCHILY.xattr.trusted.overlay.redirect": "/etc"}
    box.apply(build([(ti, data)]))
    assert "trusted.overlay.redirect" not in os.listxattr(box.dest / "f")


def test_corrupt_compressed_streams_are_refused(box: Box) -> None:
    import gzip

    import zstandard

    data = build([file("a", b"x" * 100000)])
    for media, blob in (
        (mt.OCI_LAYER_GZIP, gzip.compress(data)),
        (mt.OCI_LAYER_ZSTD, zstandard.ZstdCompressor().compress(data)),
    ):
        broken = blob[: len(blob) // 2]
        with pytest.raises(InvalidArgument):
            apply_layer(io.BytesIO(broken), box.dest, media, overlay=False)
        garbled = blob[:20] + bytes(b ^ 0x55 for b in blob[20:60]) + blob[60:]
        with pytest.raises(InvalidArgument):
            apply_layer(io.BytesIO(garbled), box.dest, media, overlay=False)


def test_diff_id_is_the_uncompressed_digest(tmp_path: Path) -> None:
    import gzip

    from skiff.types.digest import Digest

    data = build([file("a", b"hello"), directory("d/"), link("d/l", "../a")])
    for media, blob in ((mt.OCI_LAYER, data), (mt.OCI_LAYER_GZIP, gzip.compress(data))):
        dest = tmp_path / media.rsplit(".", 1)[-1]
        dest.mkdir()
        stats = apply_layer(io.BytesIO(blob), dest, media)
        assert (
            stats.diff_id == Digest.of_bytes(data)
            and stats.size == len(data)
            and stats.entries == 3
        )
        assert os.readlink(dest / "d" / "l") == "../a"


def test_empty_plain_stream_is_an_empty_layer(tmp_path: Path) -> None:
    stats = apply_layer(io.BytesIO(b""), tmp_path, mt.OCI_LAYER)
    assert stats.entries == 0 and stats.size == 0


def test_compression_is_sniffed_for_plain_media_types(tmp_path: Path) -> None:
    import gzip

    import zstandard

    data = build([file("a", b"sniffed")])
    for blob in (gzip.compress(data), zstandard.ZstdCompressor().compress(data)):
        dest = tmp_path / str(len(blob))
        dest.mkdir()
        apply_layer(io.BytesIO(blob), dest, mt.OCI_LAYER)
        assert (dest / "a").read_bytes() == b"sniffed"
