"""What the processes of one container start share.

The main process forks the intermediate first (so it imports the container-side modules
while the main process works), then fills a `StartContext` (validated spec, compiled
seccomp, the exec fifo opened O_PATH, the console socket), puts the intermediate in the
container's cgroup and sends the context in the Start message. Children never validate: the
spec they receive has passed `config.validate` in the main process.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.runtime.messages import Channel


class StartContext:
    __slots__ = (
        "bundle",
        "channel",
        "console_socket",
        "console_to_parent",
        "container_id",
        "fifo_fd",
        "new_keyring",
        "no_pivot",
        "preserve_fds",
        "rootfs",
        "seccomp",
        "seccomp_flags",
        "spec",
    )

    def __init__(
        self,
        container_id: str,
        spec: dict[str, Any],
        bundle: str,
        rootfs: str,
        channel: Channel,
        *,
        seccomp: bytes | None = None,
        seccomp_flags: int = 0,
        fifo_fd: int = -1,
        console_socket: int | None = None,
        console_to_parent: bool = False,
        preserve_fds: int = 0,
        no_pivot: bool = False,
        new_keyring: bool = True,
    ) -> None:
        self.container_id = container_id
        self.spec = spec
        self.bundle = bundle
        self.rootfs = rootfs
        self.channel = channel
        self.seccomp = seccomp
        self.seccomp_flags = seccomp_flags
        self.fifo_fd = fifo_fd
        self.console_socket = console_socket
        self.console_to_parent = console_to_parent
        self.preserve_fds = preserve_fds
        self.no_pivot = no_pivot
        self.new_keyring = new_keyring

    def to_data(self) -> dict[str, Any]:
        """Everything but the channel and fds, for the Start message."""
        return {
            "id": self.container_id,
            "spec": self.spec,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "seccomp": self.seccomp.hex() if self.seccomp is not None else None,
            "seccomp_flags": self.seccomp_flags,
            "console_to_parent": self.console_to_parent,
            "preserve_fds": self.preserve_fds,
            "no_pivot": self.no_pivot,
            "new_keyring": self.new_keyring,
            "has_console_socket": self.console_socket is not None,
        }

    def fds(self) -> tuple[int, ...]:
        """The fds the Start message carries: the exec fifo, then the console socket if any."""
        return (
            (self.fifo_fd,) if self.console_socket is None else (self.fifo_fd, self.console_socket)
        )

    @classmethod
    def from_data(cls, data: dict[str, Any], fds: list[int], channel: Channel) -> StartContext:
        seccomp = data.get("seccomp")
        return cls(
            data["id"],
            data["spec"],
            data["bundle"],
            data["rootfs"],
            channel,
            seccomp=bytes.fromhex(seccomp) if seccomp is not None else None,
            seccomp_flags=int(data.get("seccomp_flags") or 0),
            fifo_fd=fds[0],
            console_socket=fds[1] if data.get("has_console_socket") else None,
            console_to_parent=bool(data.get("console_to_parent")),
            preserve_fds=int(data.get("preserve_fds") or 0),
            no_pivot=bool(data.get("no_pivot")),
            new_keyring=bool(data.get("new_keyring", True)),
        )

    @property
    def process(self) -> dict[str, Any]:
        return self.spec.get("process") or {}

    @property
    def linux(self) -> dict[str, Any]:
        return self.spec.get("linux") or {}
