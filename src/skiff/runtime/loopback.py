"""Bring `lo` up in a network namespace the runtime created (runc's loopback strategy).

A new network namespace starts with only `lo`, and it is down; runc sets it up whenever the
config asks for a new network namespace (no path), and so do we: one ioctl(SIOCSIFFLAGS) on a
throwaway datagram socket, no netlink library. `_socket` and `fcntl` are built in, so this adds
nothing measurable to the start path.
"""

from __future__ import annotations

import _socket
import fcntl
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = "16sH22x"  # struct ifreq: ifr_name[IFNAMSIZ], then ifr_flags in the union (40 bytes)


def set_up(name: str = "lo") -> None:
    """Set IFF_UP on interface `name` of the current network namespace (idempotent)."""
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM, 0)
    try:
        raw = name.encode()
        got = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, struct.pack(_IFREQ, raw, 0))
        flags = struct.unpack(_IFREQ, got)[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack(_IFREQ, raw, flags | IFF_UP))
    except OSError as err:
        raise OSError(err.errno, f"set {name} up in the new network namespace: {err.strerror}")
    finally:
        s.close()
