"""`create`'s gate (a skiff extension): without the variable nothing waits; with it, one byte
lets create go on and end-of-stream cancels it; the fd is closed and the variable dropped."""

from __future__ import annotations

import os

import pytest

from skiff.errors import FailedPrecondition
from skiff.runtime.create import GATE_ENV, wait_for_gate


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_without_the_variable_nothing_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GATE_ENV, raising=False)
    wait_for_gate()


def test_one_byte_opens_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    r, w = os.pipe()
    monkeypatch.setenv(GATE_ENV, str(r))
    os.write(w, b"1")
    os.close(w)
    wait_for_gate()
    assert not _fd_open(r)
    assert GATE_ENV not in os.environ  # hooks and children do not see it


def test_end_of_stream_cancels(monkeypatch: pytest.MonkeyPatch) -> None:
    r, w = os.pipe()
    monkeypatch.setenv(GATE_ENV, str(r))
    os.close(w)
    with pytest.raises(FailedPrecondition, match="cancelled"):
        wait_for_gate()
    assert not _fd_open(r)
