"""The shared snapshotter suite, mounted for real: what a container writes lands in its own
snapshot only, committed layers never change, views are read-only."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.snapshots import NativeSnapshotter, OverlaySnapshotter, new_snapshotter
from skiff.types.mount import Mount


@pytest.fixture(params=["overlayfs", "native"])
def snap(request: pytest.FixtureRequest, tmp_path: Path) -> OverlaySnapshotter | NativeSnapshotter:
    return new_snapshotter(request.param, tmp_path / "snaps")


@pytest.fixture
def mount_at(tmp_path: Path) -> Iterator:
    done: list[Path] = []

    def do(mounts: list[Mount], name: str) -> Path:
        target = tmp_path / name
        target.mkdir()
        (m,) = mounts
        if m.type == "bind":
            subprocess.run(["mount", "--bind", m.source, str(target)], check=True)
            done.append(target)
            if "ro" in m.options:
                subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        else:
            subprocess.run(
                ["mount", "-t", m.type, m.source, "-o", ",".join(m.options), str(target)],
                check=True,
            )
            done.append(target)
        return target

    yield do
    for t in reversed(done):
        subprocess.run(["umount", "-l", str(t)], check=False)


def _layer(
    snap: OverlaySnapshotter | NativeSnapshotter,
    name: str,
    parent: str,
    files: dict[str, str],
    delete: tuple[str, ...] = (),
) -> None:
    snap.prepare(f"x-{name}", parent)
    up = snap.upper_path(f"x-{name}")
    for rel, text in files.items():
        (up / rel).parent.mkdir(parents=True, exist_ok=True)
        (up / rel).write_text(text)
    for rel in delete:
        if snap.whiteout_mode == "overlay":
            os.mknod(up / rel, 0o020000, 0)
        else:
            (up / rel).unlink()
    snap.commit(name, f"x-{name}")


def _tree(p: Path) -> dict[str, str]:
    return {str(f.relative_to(p)): f.read_text() for f in sorted(p.rglob("*")) if f.is_file()}


def test_container_writes_stay_in_its_snapshot(snap, mount_at) -> None:
    _layer(snap, "l1", "", {"a": "1", "d/b": "2", "gone": "x"})
    _layer(snap, "l2", "l1", {"c": "3"}, delete=("gone",))
    before = {n: _tree(snap.upper_path(n)) for n in ("l1", "l2")}
    root = mount_at(snap.prepare("ctr", "l2"), "ctr")
    assert _tree(root) == {"a": "1", "c": "3", "d/b": "2"}
    (root / "a").write_text("changed")
    (root / "new").write_text("n")
    (root / "d" / "b").unlink()
    assert _tree(root) == {"a": "changed", "c": "3", "new": "n"}
    assert {n: _tree(snap.upper_path(n)) for n in ("l1", "l2")} == before
    other = mount_at(snap.prepare("ctr2", "l2"), "ctr2")
    assert _tree(other) == {"a": "1", "c": "3", "d/b": "2"}


def test_views_are_read_only(snap, mount_at) -> None:
    _layer(snap, "l1", "", {"a": "1"})
    _layer(snap, "l2", "l1", {"b": "2"})
    root = mount_at(snap.view("v", "l2"), "v")
    assert _tree(root) == {"a": "1", "b": "2"}
    with pytest.raises(OSError) as exc:
        (root / "x").write_text("no")
    assert exc.value.errno == errno.EROFS
