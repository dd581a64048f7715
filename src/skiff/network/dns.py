"""The embedded DNS server of user-defined networks.

It listens on each user network's gateway address, port 53 (UDP and TCP), answers A queries
for the names, aliases and short ids of the containers on the *same* network as the asker,
and forwards every other query to the host's resolvers (from /etc/resolv.conf), as Docker's
127.0.0.11 resolver does. Containers on that network get `nameserver <gateway>`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import selectors
import socket
import struct
import threading
from typing import Any

TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1
RCODE_NXDOMAIN = 3
RCODE_SERVFAIL = 2


def parse_query(data: bytes) -> tuple[int, int, str, int, int, int]:
    """(id, flags, qname, qtype, qclass, end offset of the question) of a DNS query."""
    if len(data) < 12:
        raise ValueError("short DNS message")
    qid, flags, qdcount = struct.unpack("!HHH", data[:6])
    if qdcount != 1:
        raise ValueError("expected exactly one question")
    labels, i = [], 12
    while True:
        if i >= len(data):
            raise ValueError("truncated name")
        n = data[i]
        i += 1
        if n == 0:
            break
        if n & 0xC0:
            raise ValueError("compressed name in question")
        labels.append(data[i : i + n].decode("ascii", "replace"))
        i += n
    qtype, qclass = struct.unpack("!HH", data[i : i + 4])
    return qid, flags, ".".join(labels), qtype, qclass, i + 4


def build_answer(
    query: bytes, qend: int, addrs: list[str], rcode: int = 0, ttl: int = 600
) -> bytes:
    qid, flags = struct.unpack("!HH", query[:4])
    rd = flags & 0x0100
    header = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1, len(addrs), 0, 0)
    answers = b"".join(
        struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, ttl, 4) + ipaddress.IPv4Address(a).packed
        for a in addrs
    )
    return header + query[12:qend] + answers


def host_resolvers(path: str = "/etc/resolv.conf") -> list[str]:
    servers = []
    with contextlib.suppress(OSError):
        for line in open(path):
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                servers.append(parts[1])
    return servers


class EmbeddedDNS:
    """One thread serving every listening address. `records` maps gateway -> name -> [ip]."""

    def __init__(self, port: int = 53, upstream: list[str] | None = None) -> None:
        self.port = port
        self.upstream = upstream if upstream is not None else host_resolvers()
        self._sel = selectors.DefaultSelector()
        self._socks: dict[str, list[socket.socket]] = {}
        self._records: dict[str, dict[str, list[str]]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel.register(self._wake_r, selectors.EVENT_READ, ("wake", ""))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="skiff-dns", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake_w.send(b"x")
        if self._thread:
            self._thread.join(timeout=2)
        for socks in self._socks.values():
            for s in socks:
                s.close()
        self._socks.clear()

    def listen(self, address: str) -> None:
        with self._lock:
            if address in self._socks:
                return
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.bind((address, self.port))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((address, self.port))
            tcp.listen(16)
            self._socks[address] = [udp, tcp]
            self._records.setdefault(address, {})
        self._sel.register(udp, selectors.EVENT_READ, ("udp", address))
        self._sel.register(tcp, selectors.EVENT_READ, ("tcp", address))
        self._wake_w.send(b"x")
        self.start()

    def unlisten(self, address: str) -> None:
        with self._lock:
            socks = self._socks.pop(address, [])
            self._records.pop(address, None)
        for s in socks:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(s)
            s.close()

    def listening(self) -> list[str]:
        with self._lock:
            return list(self._socks)

    def set_records(self, address: str, records: dict[str, list[str]]) -> None:
        with self._lock:
            self._records[address] = {k.lower(): v for k, v in records.items()}

    def refresh(self, manager: Any) -> None:
        """Rebuild the records of every user network from the manager's endpoints."""
        for n in manager.networks():
            if not n.scope_dns():
                continue
            records: dict[str, list[str]] = {}
            for ep in manager.endpoints_on(n.id):
                for name in (ep.name, ep.container_id[:12], *ep.aliases):
                    if name:
                        records.setdefault(name.lower(), []).append(ep.ip)
            self.set_records(n.gateway, records)

    def resolve(self, address: str, name: str) -> list[str] | None:
        with self._lock:
            recs = self._records.get(address, {})
            name = name.rstrip(".").lower()
            return recs.get(name)

    # -- serving ---------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=1.0):
                kind, address = key.data
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    if kind == "wake":
                        sock.recv(64)
                    elif kind == "udp":
                        data, peer = sock.recvfrom(4096)
                        reply = self._answer(address, data)
                        if reply:
                            sock.sendto(reply, peer)
                    elif kind == "tcp":
                        conn, _ = sock.accept()
                        threading.Thread(
                            target=self._tcp, args=(conn, address), daemon=True
                        ).start()
                except OSError:
                    continue

    def _tcp(self, conn: socket.socket, address: str) -> None:
        with conn:
            conn.settimeout(5)
            try:
                (length,) = struct.unpack("!H", _recv_exact(conn, 2))
                reply = self._answer(address, _recv_exact(conn, length), tcp=True)
                if reply:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
            except (OSError, struct.error):
                return

    def _answer(self, address: str, data: bytes, tcp: bool = False) -> bytes | None:
        try:
            _, _, qname, qtype, qclass, qend = parse_query(data)
        except (ValueError, struct.error):
            return None
        addrs = self.resolve(address, qname)
        if addrs is not None:
            return build_answer(data, qend, addrs if qtype == TYPE_A and qclass == CLASS_IN else [])
        return self._forward(data, qend, tcp)

    def _forward(self, data: bytes, qend: int, tcp: bool) -> bytes:
        for server in self.upstream:
            try:
                if tcp:
                    with socket.create_connection((server, 53), timeout=3) as s:
                        s.sendall(struct.pack("!H", len(data)) + data)
                        (n,) = struct.unpack("!H", _recv_exact(s, 2))
                        return _recv_exact(s, n)
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(3)
                    s.sendto(data, (server, 53))
                    return s.recvfrom(65535)[0]
            except (OSError, struct.error):
                continue
        return build_answer(data, qend, [], rcode=RCODE_SERVFAIL)


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf
