"""cdata: ctypes' types and libc handle, on _ctypes alone (the container start's binding)."""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

import skiff
from skiff.linux import cdata

SRC = str(Path(skiff.__file__).resolve().parent.parent)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (cdata.c_int, ctypes.c_int),
        (cdata.c_uint, ctypes.c_uint),
        (cdata.c_long, ctypes.c_long),
        (cdata.c_ulong, ctypes.c_ulong),
        (cdata.c_char_p, ctypes.c_char_p),
        (cdata.c_void_p, ctypes.c_void_p),
        (cdata.c_size_t, ctypes.c_size_t),
        (cdata.c_uint32, ctypes.c_uint32),
        (cdata.c_uint64, ctypes.c_uint64),
    ],
)
def test_types_match_ctypes(ours: type, theirs: type) -> None:
    assert ours._type_ == theirs._type_  # type: ignore[attr-defined]
    assert cdata.sizeof(ours) == ctypes.sizeof(theirs)


def test_libc_calls_return_values_and_errno() -> None:
    libc = cdata.CDLL(None, use_errno=True)
    assert libc.getpid() == os.getpid()
    libc.rmdir.argtypes = [cdata.c_char_p]
    assert libc.rmdir(b"/nonexistent/skiff-cdata") == -1
    assert cdata.get_errno() == errno.ENOENT
    with pytest.raises(AttributeError):
        libc.__no_such_dunder__  # noqa: B018


def test_structures_and_byref_go_through_a_real_syscall() -> None:
    class Timespec(cdata.Structure):
        _fields_ = [("sec", cdata.c_long), ("nsec", cdata.c_long)]

    libc = cdata.CDLL(None, use_errno=True)
    ts = Timespec()
    assert libc.clock_gettime(1, cdata.byref(ts)) == 0  # CLOCK_MONOTONIC
    assert cdata.sizeof(ts) == 16 and ts.sec > 0


def test_importing_it_does_not_import_ctypes() -> None:
    code = (
        f"import sys; sys.path.insert(0, {SRC!r})\n"
        "from skiff.linux import cdata, mount, paths, capabilities, syscalls\n"
        "syscalls.libc()\n"
        "print('ctypes' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
