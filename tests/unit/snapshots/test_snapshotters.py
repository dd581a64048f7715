"""One suite, run against every snapshotter (no root: it checks mounts as values and the files
the snapshotter keeps; tests/integration/snapshots mounts them for real)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from skiff.errors import AlreadyExists, FailedPrecondition, NotFound
from skiff.snapshots import Kind, NativeSnapshotter, OverlaySnapshotter, new_snapshotter

Factory = Callable[[Path], OverlaySnapshotter | NativeSnapshotter]


@pytest.fixture(params=["overlayfs", "native"])
def snap(request: pytest.FixtureRequest, tmp_path: Path) -> OverlaySnapshotter | NativeSnapshotter:
    return new_snapshotter(request.param, tmp_path / "snaps")


def _layer(
    snap: OverlaySnapshotter | NativeSnapshotter, name: str, parent: str, files: dict[str, str]
) -> None:
    key = f"extract-{name}"
    snap.prepare(key, parent)
    upper = snap.upper_path(key)
    for rel, text in files.items():
        (upper / rel).parent.mkdir(parents=True, exist_ok=True)
        (upper / rel).write_text(text)
    snap.commit(name, key)


def test_prepare_commit_lifecycle(snap: OverlaySnapshotter | NativeSnapshotter) -> None:
    mounts = snap.prepare("k1")
    assert len(mounts) == 1 and mounts[0].type == "bind" and "rw" in mounts[0].options
    assert snap.stat("k1").kind == Kind.ACTIVE
    snap.commit("layer1", "k1")
    info = snap.stat("layer1")
    assert info.kind == Kind.COMMITTED and info.parent == ""
    with pytest.raises(NotFound):
        snap.stat("k1")
    with pytest.raises(FailedPrecondition):
        snap.mounts("layer1")
    with pytest.raises(AlreadyExists):
        snap.prepare("layer1")


def test_stacked_layers_and_containers(snap: OverlaySnapshotter | NativeSnapshotter) -> None:
    _layer(snap, "l1", "", {"a": "1", "d/x": "x"})
    _layer(snap, "l2", "l1", {"b": "2"})
    mounts = snap.prepare("container", "l2")
    assert snap.stat("container").parent == "l2"
    if snap.name == "overlayfs":
        (m,) = mounts
        assert m.type == "overlay"
        opts = dict(o.split("=", 1) for o in m.options if "=" in o)
        lowers = opts["lowerdir"].split(":")
        assert lowers == [str(p) for p in snap.lower_paths("container")]
        assert lowers == [str(snap.upper_path("l2")), str(snap.upper_path("l1"))]
        assert opts["upperdir"] == str(snap.upper_path("container"))
        assert Path(opts["workdir"]).is_dir()
        assert not (snap.upper_path("container") / "a").exists()  # layers stay shared
    else:
        (m,) = mounts
        assert m.type == "bind"
        fs = snap.upper_path("container")
        assert (
            (fs / "a").read_text() == "1"
            and (fs / "b").read_text() == "2"
            and (fs / "d/x").exists()
        )
    assert snap.mounts("container") == mounts
    with pytest.raises(FailedPrecondition):
        snap.remove("l2")  # has a child
    snap.remove("container")
    snap.remove("l2")
    snap.remove("l1")
    assert list(snap.walk()) == []


def test_view_is_read_only(snap: OverlaySnapshotter | NativeSnapshotter) -> None:
    _layer(snap, "l1", "", {"a": "1"})
    (m,) = snap.view("v", "l1")
    assert "ro" in m.options
    assert snap.stat("v").kind == Kind.VIEW
    with pytest.raises(FailedPrecondition):
        snap.commit("x", "v")


def test_usage_and_walk(snap: OverlaySnapshotter | NativeSnapshotter) -> None:
    _layer(snap, "l1", "", {"a": "12345", "b": "678"})
    assert snap.usage("l1").size == 8
    assert snap.usage("l1").inodes == 2
    assert {i.name for i in snap.walk()} == {"l1"}


def test_parent_must_be_committed(snap: OverlaySnapshotter | NativeSnapshotter) -> None:
    snap.prepare("active")
    with pytest.raises(FailedPrecondition):
        snap.prepare("child", "active")
    with pytest.raises(NotFound):
        snap.prepare("child2", "missing")


def test_state_survives_reopen_and_cleanup_removes_orphans(
    snap: OverlaySnapshotter | NativeSnapshotter,
) -> None:
    _layer(snap, "l1", "", {"a": "1"})
    orphan = snap.root / "snapshots" / "new-99"
    orphan.mkdir()
    again = type(snap)(snap.root)
    assert again.stat("l1").kind == Kind.COMMITTED
    assert not orphan.exists()
    assert (again.upper_path("l1") / "a").read_text() == "1"
