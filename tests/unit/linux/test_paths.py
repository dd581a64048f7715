"""skiff.linux.paths: resolving container paths inside a root, on a temp dir (no root needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skiff.errors import FailedPrecondition, InvalidArgument
from skiff.linux import paths


@pytest.fixture(params=["openat2", "walker"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every test with the kernel's openat2 and with the pure-Python walker."""
    monkeypatch.setattr(paths, "_openat2_missing", request.param == "walker")
    return str(request.param)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "usr" / "lib").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root\n")
    return r


def test_plain_path(root: Path, mode: str) -> None:
    assert paths.resolve_in_root(str(root), "/etc/passwd") == str(root / "etc" / "passwd")
    assert paths.resolve_in_root(str(root), "etc/./passwd") == str(root / "etc" / "passwd")
    assert paths.resolve_in_root(str(root), "/") == str(root)


def test_dotdot_is_clamped_at_root(root: Path, mode: str) -> None:
    assert paths.resolve_in_root(str(root), "/../../../etc/passwd") == str(root / "etc" / "passwd")
    assert paths.resolve_in_root(str(root), "/usr/../../etc") == str(root / "etc")


def test_absolute_symlink_is_rerooted(root: Path, mode: str) -> None:
    (root / "evil").symlink_to("/etc")
    assert paths.resolve_in_root(str(root), "/evil/passwd") == str(root / "etc" / "passwd")
    assert paths.resolve_in_root(str(root), "/evil/shadow") == str(root / "etc" / "shadow")


def test_relative_symlink_escape_is_clamped(root: Path, mode: str) -> None:
    (root / "usr" / "lib" / "up").symlink_to("../../../../../../etc")
    assert paths.resolve_in_root(str(root), "/usr/lib/up") == str(root / "etc")


def test_symlink_chain(root: Path, mode: str) -> None:
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("/usr/c")
    (root / "usr" / "c").symlink_to("../etc/passwd")
    assert paths.resolve_in_root(str(root), "/a") == str(root / "etc" / "passwd")


def test_missing_tail_is_taken_literally(root: Path, mode: str) -> None:
    (root / "link").symlink_to("/nonexistent/dir")
    assert paths.resolve_in_root(str(root), "/link/x") == str(root / "nonexistent" / "dir" / "x")
    assert paths.resolve_in_root(str(root), "/no/such/../x") == str(root / "no" / "x")


def test_dotdot_after_missing_component_still_resolves_symlinks(root: Path, mode: str) -> None:
    (root / "evil").symlink_to("/etc")
    assert paths.resolve_in_root(str(root), "/missing/../evil") == str(root / "etc")


def test_symlink_loop_is_eloop(root: Path, mode: str) -> None:
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("/loop1")
    with pytest.raises(InvalidArgument, match="ELOOP"):
        paths.resolve_in_root(str(root), "/loop1/x")


def test_root_given_through_a_symlink(tmp_path: Path, root: Path, mode: str) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    assert paths.resolve_in_root(str(alias), "/etc") == str(root / "etc")


def test_mkdir_all_through_escaping_symlink_stays_inside(
    tmp_path: Path, root: Path, mode: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "evil").symlink_to(str(outside))
    host = paths.mkdir_all_in_root(str(root), "/evil/sub/dir")
    assert host == str(root / str(outside).lstrip("/") / "sub" / "dir")
    assert os.path.isdir(host)
    assert list(outside.iterdir()) == []


def test_mkdir_all_modes_and_existing(root: Path, mode: str) -> None:
    host = paths.mkdir_all_in_root(str(root), "/a/b", 0o700)
    assert os.stat(host).st_mode & 0o777 == 0o700 & ~_umask()
    assert paths.mkdir_all_in_root(str(root), "/a/b") == host


def test_mkdir_all_over_a_file_fails(root: Path, mode: str) -> None:
    with pytest.raises(FailedPrecondition, match="ENOTDIR"):
        paths.mkdir_all_in_root(str(root), "/etc/passwd/x")


def test_create_file_in_root(tmp_path: Path, root: Path, mode: str) -> None:
    (root / "hosts").symlink_to("/../../../tmp-outside-hosts")
    host = paths.create_file_in_root(str(root), "/hosts")
    assert host == str(root / "tmp-outside-hosts")
    assert os.path.isfile(host)
    assert not os.path.exists("/tmp-outside-hosts")
    assert paths.create_file_in_root(str(root), "/etc/passwd") == str(root / "etc" / "passwd")
    assert (root / "etc" / "passwd").read_text() == "root\n"  # kept


def test_create_file_on_a_directory_fails(root: Path, mode: str) -> None:
    with pytest.raises(FailedPrecondition, match="EISDIR"):
        paths.create_file_in_root(str(root), "/usr")


def test_open_in_root(root: Path, mode: str) -> None:
    (root / "evil").symlink_to("/etc")
    fd = paths.open_in_root(str(root), "/evil/passwd", os.O_RDONLY)
    try:
        assert os.read(fd, 100) == b"root\n"
    finally:
        os.close(fd)


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_real_root_path_matches_realpath(tmp_path: Path) -> None:
    (tmp_path / "real" / "root").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    via_link = str(tmp_path / "link" / "root" / ".." / "root")
    assert paths.real_root_path(via_link) == os.path.realpath(via_link)
    missing = str(tmp_path / "link" / "missing")
    assert paths.real_root_path(missing) == os.path.realpath(missing)


def test_mkdir_all_when_the_path_appears_meanwhile(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container makes the directory between our lookup and our mkdir: look again."""
    monkeypatch.setattr(paths, "_openat2_missing", True)  # the general walk
    real = paths._existing_ancestor
    raced = []

    def racing(real_root: str, host: str) -> str:
        if not raced:
            raced.append(host)
            os.makedirs(host)  # the container wins the race
            return host
        return real(real_root, host)

    monkeypatch.setattr(paths, "_existing_ancestor", racing)
    assert paths.mkdir_all_in_root(str(root), "/a/b") == os.path.join(os.path.realpath(root), "a/b")
    assert raced


def test_walk_when_a_symlink_turns_into_a_directory_meanwhile(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root / "d").mkdir()
    real_lstat = os.lstat
    calls = []

    def racing_lstat(path: str) -> os.stat_result:
        if path.endswith("/d") and not calls:
            calls.append(path)
            return real_lstat(str(root / "link"))  # it looked like a symlink a moment ago
        return real_lstat(path)

    (root / "link").symlink_to("/d")
    monkeypatch.setattr(paths.os, "lstat", racing_lstat)
    real_root = os.path.realpath(root)
    assert paths._walk(real_root, "/d/x") == os.path.join(real_root, "d", "x")
    assert calls
