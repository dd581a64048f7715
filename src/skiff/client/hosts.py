"""Where the daemon is: host URLs (unix://, tcp://, fd-less), the environment, TLS options."""

from __future__ import annotations

import os

from skiff.errors import InvalidArgument

DEFAULT_HOST = "unix:///run/skiff/skiff.sock"
DEFAULT_TCP_PORT = 2375
DEFAULT_TLS_PORT = 2376


class TLSOptions:
    """--tls / --tlsverify and the PEM files; `verify` checks the daemon's certificate."""

    __slots__ = ("cacert", "cert", "key", "verify")

    def __init__(
        self,
        verify: bool = False,
        cacert: str | None = None,
        cert: str | None = None,
        key: str | None = None,
    ) -> None:
        self.verify, self.cacert, self.cert, self.key = verify, cacert, cert, key


class Host:
    """A parsed daemon address: scheme "unix" (address is a path) or "tcp" (host, port).

    A plain class, not a dataclass: this module is on the start-up path of every command.
    """

    __slots__ = ("hostname", "path", "port", "scheme", "url")

    def __init__(
        self, url: str, scheme: str, path: str = "", hostname: str = "", port: int = 0
    ) -> None:
        self.url, self.scheme, self.path, self.hostname, self.port = (
            url,
            scheme,
            path,
            hostname,
            port,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Host) and (self.url, self.scheme, self.path) == (
            other.url,
            other.scheme,
            other.path,
        )

    def __hash__(self) -> int:
        return hash((self.url, self.scheme, self.path))


def resolve_host(flag: str | None, env: dict[str, str] | None = None) -> str:
    """-H/--host, then SKIFF_HOST, then DOCKER_HOST, then the default socket."""
    env = os.environ if env is None else env  # type: ignore[assignment]
    assert env is not None
    return flag or env.get("SKIFF_HOST") or env.get("DOCKER_HOST") or DEFAULT_HOST


def parse_host(url: str, tls: bool = False) -> Host:
    """Parse `unix:///path`, `tcp://host:port`, `host:port`, `:port` or a bare socket path."""
    url = url.strip()
    if url.startswith("/"):
        return Host(url=f"unix://{url}", scheme="unix", path=url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "tcp", url
    scheme = scheme.lower()
    if scheme == "unix":
        if not rest:
            raise InvalidArgument(f"host {url!r}: a unix:// address needs a socket path")
        return Host(url=f"unix://{rest}", scheme="unix", path=rest)
    if scheme in ("tcp", "http", "https"):
        hostport = rest.split("/", 1)[0]
        if hostport.startswith("["):
            end = hostport.find("]")
            hostname, portstr = hostport[1:end], hostport[end + 2 :]
        else:
            hostname, _, portstr = (
                hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
            )
        hostname = hostname or "127.0.0.1"
        default = DEFAULT_TLS_PORT if tls or scheme == "https" else DEFAULT_TCP_PORT
        try:
            port = int(portstr) if portstr else default
        except ValueError:
            raise InvalidArgument(f"host {url!r}: invalid port {portstr!r}")
        if not 0 < port < 65536:
            raise InvalidArgument(f"host {url!r}: port {port} out of range")
        return Host(url=f"tcp://{hostname}:{port}", scheme="tcp", hostname=hostname, port=port)
    if scheme == "ssh":
        raise InvalidArgument(
            f"host {url!r}: ssh:// hosts are not supported; use unix:// or tcp://"
        )
    raise InvalidArgument(f"host {url!r}: unknown scheme {scheme!r} (want unix:// or tcp://)")
