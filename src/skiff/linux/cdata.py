"""The few pieces of ctypes the container start uses, built on its C core (`_ctypes`) alone.

`import ctypes` costs ~2.5 ms here (its package defines dozens of types and helpers at import);
`import _ctypes` costs nearly nothing. Every container start loads the C library in two
processes (the intermediate and init share one load) and the runtime's hot path needs only:
a handle on libc with errno, a few integer and pointer types, structures, `byref`, `sizeof`,
`get_errno`. These are the very classes ctypes defines (same `_type_` codes, same base
classes), so values and functions from here and from ctypes mix freely; code off the hot
path (libseccomp, netlink, BPF) keeps using ctypes itself.
"""

from __future__ import annotations

import _ctypes
from _ctypes import Structure as Structure
from _ctypes import byref as byref
from _ctypes import get_errno as get_errno
from _ctypes import sizeof as sizeof

TYPE_CHECKING = False
if TYPE_CHECKING:  # to a type checker these are ctypes' own
    from ctypes import CDLL as CDLL
    from ctypes import c_char_p as c_char_p
    from ctypes import c_int as c_int
    from ctypes import c_long as c_long
    from ctypes import c_size_t as c_size_t
    from ctypes import c_uint as c_uint
    from ctypes import c_uint32 as c_uint32
    from ctypes import c_uint64 as c_uint64
    from ctypes import c_ulong as c_ulong
    from ctypes import c_void_p as c_void_p
else:
    _SimpleCData = _ctypes._SimpleCData

    class c_int(_SimpleCData):
        _type_ = "i"

    class c_uint(_SimpleCData):
        _type_ = "I"

    class c_long(_SimpleCData):
        _type_ = "l"

    class c_ulong(_SimpleCData):
        _type_ = "L"

    class c_char_p(_SimpleCData):
        _type_ = "z"

    class c_void_p(_SimpleCData):
        _type_ = "P"

    # Linux, LP64 and ILP32 alike: int is 32 bits, long and size_t the pointer's width.
    c_uint32 = c_uint
    c_size_t = c_ulong
    if sizeof(c_ulong) == 8:
        c_uint64 = c_ulong
    else:

        class c_uint64(_SimpleCData):
            _type_ = "Q"

    class CDLL:
        """A loaded shared library (`None`: the program and what it links, i.e. libc); its
        functions are attributes, C calling convention, int result unless `restype` says
        otherwise, errno saved for `get_errno` when `use_errno`."""

        def __init__(self, name, *, use_errno=False):
            flags = _ctypes.FUNCFLAG_CDECL | (_ctypes.FUNCFLAG_USE_ERRNO if use_errno else 0)

            class _FuncPtr(_ctypes.CFuncPtr):
                _flags_ = flags
                _restype_ = c_int

            self._name = name
            self._FuncPtr = _FuncPtr
            self._handle = _ctypes.dlopen(name, 0)  # RTLD_LOCAL, ctypes' default mode

        def __getattr__(self, name):
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            func = self._FuncPtr((name, self))
            func.__name__ = name
            setattr(self, name, func)
            return func
