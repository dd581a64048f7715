"""A container's /etc/hosts, /etc/resolv.conf and /etc/hostname, as Docker writes them."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable

_LOOPBACK_NS = re.compile(r"^\s*nameserver\s+(127\.\S+|::1)\s*$", re.M)


def hosts_file(
    hostname: str,
    ip: str | None,
    *,
    extra_hosts: Iterable[str] = (),
    links: Iterable[tuple[str, str]] = (),
    domainname: str = "",
) -> str:
    """`extra_hosts` are Docker's "name:ip" strings; `links` are (alias, ip) pairs."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::\tip6-localnet",
        "ff00::\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    for entry in extra_hosts:
        name, _, addr = entry.partition(":")
        if name and addr:
            lines.append(f"{addr}\t{name}")
    for alias, addr in links:
        lines.append(f"{addr}\t{alias}")
    if ip:
        fqdn = f"{hostname}.{domainname} {hostname}" if domainname else hostname
        lines.append(f"{ip}\t{fqdn}")
    return "\n".join(lines) + "\n"


def resolv_conf(
    *,
    host_path: str = "/etc/resolv.conf",
    dns: Iterable[str] = (),
    search: Iterable[str] = (),
    options: Iterable[str] = (),
    embedded: str | None = None,
) -> str:
    """Docker's rules: explicit --dns wins; the embedded server for user networks; otherwise
    the host's file without loopback nameservers (unreachable from a container)."""
    host = ""
    with contextlib.suppress(OSError):
        host = open(host_path).read()
    dns, search, options = list(dns), list(search), list(options)
    out: list[str] = []
    if embedded and not dns:
        out.append(f"nameserver {embedded}")
    elif dns:
        out += [f"nameserver {d}" for d in dns]
    else:
        kept = [
            ln
            for ln in host.splitlines()
            if ln.strip().startswith("nameserver") and not _LOOPBACK_NS.match(ln)
        ]
        out += kept or ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    if search:
        out.append("search " + " ".join(search))
    else:
        out += [ln for ln in host.splitlines() if ln.strip().startswith(("search", "domain"))]
    if options:
        out.append("options " + " ".join(options))
    elif embedded:
        out.append("options ndots:0")
    else:
        out += [ln for ln in host.splitlines() if ln.strip().startswith("options")]
    return "\n".join(out) + "\n"


def hostname_file(hostname: str) -> str:
    return hostname + "\n"
