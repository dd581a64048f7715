"""state.json persistence and the status derived from the kernel."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from skiff.errors import AlreadyExists, InvalidArgument, NotFound
from skiff.runtime import state as st


def _state(root: Path, pid: int = 0, start_time: int = 0) -> st.ContainerState:
    return st.ContainerState(
        str(root), "c1", bundle="/b", rootfs="/b/rootfs", spec={"ociVersion": "1.2.0"},
        pid=pid, start_time=start_time, annotations={"k": "v"}, status_hint=st.CREATED,
    )  # fmt: skip


def test_save_load_round_trip(tmp_path: Path) -> None:
    st.make_state_dir(str(tmp_path), "c1")
    s = _state(tmp_path, 123, 456)
    s.save()
    loaded = st.ContainerState.load(str(tmp_path), "c1")
    assert loaded.to_json() == s.to_json()
    assert not [p for p in os.listdir(tmp_path / "c1") if ".tmp" in p]
    assert (tmp_path / "c1" / "state.json").stat().st_mode & 0o777 == 0o600


def test_state_dir_claims_the_id(tmp_path: Path) -> None:
    st.make_state_dir(str(tmp_path), "c1")
    with pytest.raises(AlreadyExists, match="container with id exists: c1"):
        st.make_state_dir(str(tmp_path), "c1")
    for bad in ("", "..", "a/b", "x\0"):
        with pytest.raises(InvalidArgument):
            st.make_state_dir(str(tmp_path), bad)
    with pytest.raises(NotFound, match='container "zz" does not exist'):
        st.ContainerState.load(str(tmp_path), "zz")


def test_status_follows_the_process(tmp_path: Path) -> None:
    st.make_state_dir(str(tmp_path), "c1")
    proc = subprocess.Popen(["sleep", "30"])
    try:
        start = st.process_start_time(proc.pid)
        assert start is not None
        s = _state(tmp_path, proc.pid, start)
        os.mkfifo(s.fifo)
        assert s.status() == st.CREATED
        os.unlink(s.fifo)
        assert s.status() == st.RUNNING
        assert s.oci_state()["pid"] == proc.pid
        s.start_time = start + 1  # the pid now names another process: ours is gone
        assert s.status() == st.STOPPED
        s.start_time = start
        proc.kill()
        proc.wait()
        assert s.status() == st.STOPPED
        oci = s.oci_state()
        assert oci["pid"] == 0
        assert oci["annotations"] == {"k": "v"}
    finally:
        proc.kill()
        proc.wait()


def test_zombie_counts_as_stopped(tmp_path: Path) -> None:
    proc = subprocess.Popen(["true"])
    pid = proc.pid
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    try:
        assert st.process_start_time(pid) is None
    finally:
        proc.wait()


def test_rules() -> None:
    assert st.can_start(st.CREATED) and not st.can_start(st.RUNNING)
    assert st.can_delete(st.STOPPED) and not st.can_delete(st.RUNNING)
    assert st.can_kill(st.PAUSED) and not st.can_kill(st.STOPPED)
    assert st.rfc3339_now().endswith("Z")
