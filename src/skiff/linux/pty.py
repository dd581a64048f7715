"""Pseudo-terminals: open a pty pair, pass the master over a unix socket, proxy a master.

The runtime opens /dev/ptmx *inside* the container (after its /dev/pts is mounted) so the
slave belongs to the container's devpts instance. The master goes to whoever asked for it
over `--console-socket` with SCM_RIGHTS, as runc does (the message text is the master's name).
"""

from __future__ import annotations

import _socket
import fcntl
import os
import struct
import sys

_INT = 4  # sizeof(int) in SCM_RIGHTS; `array` would cost ~1.3 ms of imports (collections)

TIOCSCTTY = 0x540E
TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441


class Pty:
    """An open pty pair: `master` and `slave` fds and the slave's path in its devpts."""

    __slots__ = ("master", "slave", "slave_path")

    def __init__(self, master: int, slave: int, slave_path: str) -> None:
        self.master = master
        self.slave = slave
        self.slave_path = slave_path

    def close(self) -> None:
        for fd in (self.master, self.slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self.slave = -1


def open_pty(ptmx: str = "/dev/ptmx") -> Pty:
    """Open a new pty pair through `ptmx`; the slave is opened from the master (TIOCGPTPEER)
    so no path lookup can be redirected."""
    try:
        master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as err:
        raise OSError(err.errno, f"open {ptmx}: {err.strerror}")
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
        slave_path = os.path.join(os.path.dirname(os.path.realpath(ptmx)), str(number))
        if os.path.basename(os.path.dirname(slave_path)) != "pts":
            slave_path = f"/dev/pts/{number}"
        try:
            slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return Pty(master, slave, slave_path)


def make_controlling_terminal(slave: int) -> None:
    """Make `slave` the controlling terminal and stdio of this process (call after setsid)."""
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target)


def connect(socket_path: str) -> int:
    """Connect to the console socket at `socket_path`; returns the connected fd (CLOEXEC).

    Done by the runtime before the container process changes root: the path is a host path.
    """
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(socket_path)
    except OSError as err:
        sock.close()
        raise OSError(err.errno, f"connect console socket {socket_path}: {err.strerror}")
    return sock.detach()


def send_fd(socket_path: str, fd: int, name: str = "/dev/ptmx") -> None:
    """Send `fd` to the unix socket at `socket_path` with SCM_RIGHTS, as runc does."""
    sock_fd = connect(socket_path)
    try:
        send_fd_on(sock_fd, fd, name)
    finally:
        os.close(sock_fd)


def send_fd_on(sock_fd: int, fd: int, name: str = "/dev/ptmx") -> None:
    """Send `fd` on the connected unix socket `sock_fd`."""
    sock = _socket.socket(fileno=os.dup(sock_fd))
    try:
        rights = fd.to_bytes(_INT, sys.byteorder, signed=True)
        sock.sendmsg([name.encode()], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
    finally:
        sock.close()


def recv_fd(sock_fd: int) -> tuple[str, int]:
    """Receive one (name, fd) sent with `send_fd` on the connected socket `sock_fd`."""
    sock = _socket.socket(fileno=os.dup(sock_fd))
    try:
        msg, ancdata, _flags, _addr = sock.recvmsg(4096, _socket.CMSG_SPACE(_INT))
    finally:
        sock.close()
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds = [
                int.from_bytes(data[i : i + _INT], sys.byteorder, signed=True)
                for i in range(0, len(data) - len(data) % _INT, _INT)
            ]
            if not fds:
                break
            for extra in fds[1:]:
                os.close(extra)
            return msg.decode(errors="replace"), fds[0]
    raise OSError(5, "console socket: message carried no file descriptor")


def copy_winsize(src: int, dst: int) -> None:
    """Copy the window size of terminal `src` to terminal `dst` (best effort)."""
    try:
        size = fcntl.ioctl(src, TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, TIOCSWINSZ, size)
    except OSError:
        pass


def proxy(master: int, stdin: int = 0, stdout: int = 1, *, until_fd: int = -1) -> None:
    """Copy stdin → master and master → stdout until the master hangs up (or `until_fd`
    becomes readable, e.g. a pidfd of the process on the other side, after draining)."""
    import select

    poller = select.poll()
    poller.register(master, select.POLLIN)
    stdin_open = True
    try:
        poller.register(stdin, select.POLLIN)
    except (OSError, ValueError):
        stdin_open = False
    if until_fd >= 0:
        poller.register(until_fd, select.POLLIN)
    while True:
        for fd, events in poller.poll():
            if fd == master:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    return
                _write_all(stdout, data)
            elif fd == stdin and stdin_open:
                data = os.read(stdin, 65536) if events & (select.POLLIN | select.POLLHUP) else b""
                if not data:
                    poller.unregister(stdin)
                    stdin_open = False
                    continue
                _write_all(master, data)
            elif fd == until_fd:
                _drain(master, stdout)
                return


def _drain(master: int, stdout: int) -> None:
    import select

    while select.select([master], [], [], 0.05)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        _write_all(stdout, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
