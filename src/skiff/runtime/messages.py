"""The messages the processes of one container start exchange, and the channel that carries them.

create (main) ──fork──> intermediate ──fork──> init
   │  -> Start(data) + fds     (config validated, id claimed: the start context; fds = exec
   │                            fifo and console socket. The intermediate forked first and
   │                            imported the container-side modules meanwhile; the main
   │                            process makes the cgroup next, while the intermediate
   │                            enters the namespaces and forks init.)
   │  <- UsernsUnshared        (intermediate made a user ns: write its uid/gid maps)
   │  -> UsernsMapped
   │  <- InitPid(pid)          (intermediate forked init; it exits next)
   │  -> CgroupJoined          (to init: the main process made the cgroup and put init in it)
   │  <- RunCreateHooks(pid)   (init: run prestart/createRuntime now, in the runtime ns)
   │  -> HooksDone
   │  <- Console + fd          (init opened its pty; master attached, for `run` to proxy)
   │  <- Ready                 (init is set up and blocks on the exec fifo)
   │  <- Failed(reason[, data]) (any step failed; the reason is the user-facing error, data
   │                            may name its skiff.errors class: {"error": "InvalidArgument"})

One message is one datagram on a SOCK_SEQPACKET socketpair: a small dict in `marshal`'s
format (both ends are forks of one interpreter; marshal is built in and several times faster
than JSON, whose C accelerator the container side would otherwise import for nothing else),
optionally with fds in SCM_RIGHTS. End of stream before Ready means the child died.
"""

from __future__ import annotations

import _socket
import marshal
import os
import sys

from skiff.errors import Internal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

START = "start"
USERNS_UNSHARED = "userns-unshared"
USERNS_MAPPED = "userns-mapped"
INIT_PID = "init-pid"
CGROUP_JOINED = "cgroup-joined"
RUN_CREATE_HOOKS = "run-create-hooks"
HOOKS_DONE = "hooks-done"
CONSOLE = "console"
READY = "ready"
FAILED = "failed"

KINDS = (
    START,
    USERNS_UNSHARED,
    USERNS_MAPPED,
    INIT_PID,
    CGROUP_JOINED,
    RUN_CREATE_HOOKS,
    HOOKS_DONE,
    CONSOLE,
    READY,
    FAILED,
)


class Message:
    """One message: `kind` plus `pid` (InitPid, HooksDone), `reason` (Failed) or `data`
    (Start, CgroupReady, Failed)."""

    __slots__ = ("data", "kind", "pid", "reason")

    def __init__(
        self, kind: str, *, pid: int = 0, reason: str = "", data: dict[str, Any] | None = None
    ) -> None:
        if kind not in KINDS:
            raise Internal(f"unknown runtime message kind {kind!r}")
        self.kind = kind
        self.pid = pid
        self.reason = reason
        self.data = data

    def encode(self) -> bytes:
        body: dict[str, Any] = {"kind": self.kind}
        if self.pid:
            body["pid"] = self.pid
        if self.reason:
            body["reason"] = self.reason
        if self.data is not None:
            body["data"] = self.data
        return marshal.dumps(body)

    @classmethod
    def decode(cls, raw: bytes) -> Message:
        try:
            body = marshal.loads(raw)
        except (EOFError, ValueError, TypeError) as err:
            raise Internal(f"runtime protocol: unreadable message: {err}") from None
        if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
            raise Internal(f"runtime protocol: not a message: {body!r}")
        return cls(
            body["kind"],
            pid=int(body.get("pid", 0)),
            reason=str(body.get("reason", "")),
            data=body.get("data"),
        )

    def __repr__(self) -> str:
        return f"Message({self.kind!r}, pid={self.pid}, reason={self.reason!r})"


class ChannelClosed(Exception):
    """The other end is gone (exited or crashed) without saying why."""


class Channel:
    """One end of the socketpair between two processes of a container start."""

    __slots__ = ("sock",)

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
        return cls(a), cls(b)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, msg: Message, fd: int | None = None, *, fds: tuple[int, ...] = ()) -> None:
        """Send `msg`, with `fd` (or several `fds`) attached as SCM_RIGHTS."""
        attached = (fd,) if fd is not None else fds
        anc = []
        if attached:
            raw = b"".join(f.to_bytes(4, sys.byteorder, signed=True) for f in attached)
            anc.append((_socket.SOL_SOCKET, _socket.SCM_RIGHTS, raw))
        self.sock.sendmsg([msg.encode()], anc)

    def recv_fds(self, max_fds: int = 4) -> tuple[Message, list[int]]:
        """Receive one message and every fd attached to it (close-on-exec)."""
        size = 4  # sizeof(int); `array` would cost 2 ms of imports
        data, anc, _flags, _addr = self.sock.recvmsg(1 << 20, _socket.CMSG_SPACE(size * max_fds))
        if not data:
            raise ChannelClosed()
        fds: list[int] = []
        for level, kind, payload in anc:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                fds.extend(
                    int.from_bytes(payload[i : i + size], sys.byteorder, signed=True)
                    for i in range(0, len(payload) - len(payload) % size, size)
                )
        for fd in fds:
            os.set_inheritable(fd, False)
        return Message.decode(data), fds

    def recv(self) -> tuple[Message, int | None]:
        """Receive one message and at most one fd (extra ones are closed)."""
        msg, fds = self.recv_fds()
        for extra in fds[1:]:
            os.close(extra)
        return msg, (fds[0] if fds else None)

    def expect(self, kind: str) -> Message:
        """Receive one message; a Failed message or a closed channel raises ChildFailed."""
        msg, fd = self.recv()
        if fd is not None:
            os.close(fd)
        if msg.kind == FAILED:
            raise ChildFailed(msg.reason)
        if msg.kind != kind:
            raise Internal(f"runtime protocol: expected {kind}, got {msg.kind}")
        return msg

    def close(self) -> None:
        self.sock.close()


class ChildFailed(Exception):
    """A child process of the container start reported a failure (the reason is user-facing)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
