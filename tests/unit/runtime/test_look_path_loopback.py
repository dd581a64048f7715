"""The program lookup before Ready (runc's exec.LookPath rules and messages) and the ifreq
that sets `lo` up."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from skiff.errors import FailedPrecondition, NotFound
from skiff.runtime import loopback
from skiff.runtime.process import look_path


def _exe(path: Path, mode: int = 0o755) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    return path


def test_first_executable_regular_file_on_path_wins(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    _exe(a / "tool", 0o644)  # not executable: skipped
    (b / "tool").mkdir()  # a directory: skipped
    want = _exe(c / "tool")
    assert look_path("tool", {"PATH": f"{a}:{b}:{c}"}) == str(want)


def test_missing_program_is_not_found_with_runcs_message(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as err:
        look_path("nosuch", {"PATH": str(tmp_path)})
    assert err.value.message == 'exec: "nosuch": executable file not found in $PATH'


@pytest.mark.parametrize("kind", ["dir", "plain"])
def test_path_that_cannot_be_executed_is_permission_denied(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "x"
    if kind == "dir":
        target.mkdir()
    else:
        _exe(target, 0o644)
    with pytest.raises(FailedPrecondition) as err:
        look_path(str(target), {})
    assert err.value.message == f'exec: "{target}": permission denied'


def test_path_that_does_not_exist_names_the_stat(tmp_path: Path) -> None:
    target = tmp_path / "gone"
    with pytest.raises(NotFound) as err:
        look_path(str(target), {})
    assert err.value.message == f'exec: "{target}": stat {target}: no such file or directory'


def test_executable_path_is_returned_as_given(tmp_path: Path) -> None:
    target = _exe(tmp_path / "run")
    assert look_path(str(target), {"PATH": "/nonexistent"}) == str(target)


def test_ifreq_layout_is_the_kernels() -> None:
    assert struct.calcsize(loopback._IFREQ) == 40  # sizeof(struct ifreq) on 64-bit Linux
    raw = struct.pack(loopback._IFREQ, b"lo", loopback.IFF_UP)
    assert raw[:3] == b"lo\0" and raw[16:18] == struct.pack("H", 1)


def test_set_up_of_a_missing_interface_names_it() -> None:
    with pytest.raises(OSError) as err:
        loopback.set_up(f"nx{os.getpid() % 100000}")
    assert "new network namespace" in str(err.value.strerror)
