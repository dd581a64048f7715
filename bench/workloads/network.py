# ruff: noqa: RUF001 (the report is typeset with minus signs)
"""Bridge networking (issue 6): what a container's network setup on the default bridge adds to
`docker run --rm busybox true`, and the connection rate through a published port, skiffd
against dockerd in the same run.

Both daemons here are second instances with bridge networking on, each on a bridge of its own:
skiffd with `--bridge sk<run id>` (a free /24 of its choosing, its own nft table), dockerd with
`--bridge skbd<run id> --iptables=true` on a bridge the bench makes on a free /24 (see
lib.netfilter). They are started for this workload and stopped at its end, with everything
they added to the host's networking removed.

Rows: the time of `run --rm` on the default bridge; the time it adds over `--network none`,
as one difference per round (bridge run and none run back to back, their order alternated);
and the wall time of one connection through `-p 127.0.0.1::80` to busybox httpd (connect,
HTTP/1.0 request, read to EOF, close), N connections in a row per sample.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import statistics
import time
from collections.abc import Callable

from lib import procs
from lib.context import BUSYBOX_REF, Context
from lib.engines import Daemon, Unavailable
from lib.stats import Goal, Row
from lib.timing import Side, fill

NAME = "network"
ALIASES = ("bridge", "net-run-bridge", "net-bridge-added", "net-port-conn", "ports")
BUDGET = (180, 60)

BRIDGE_RUN = ("run", "--rm", BUSYBOX_REF)
NONE_RUN = ("run", "--rm", "--network", "none", BUSYBOX_REF)


def connections(quick: bool) -> int:
    return 100 if quick else 500


def rows(quick: bool) -> list[Row]:
    n = connections(quick)
    return [
        Row("net-run-bridge", "`run --rm busybox true`, default bridge network", "s",
            "skiffd", "dockerd", None),
        Row("net-bridge-added", "time bridge networking adds to `run --rm busybox true`", "s",
            "skiffd", "dockerd", Goal("absolute", 0.010)),
        Row("net-port-conn", f"published port 127.0.0.1::80, one connection ({n} in a row)",
            "s", "skiffd (nft DNAT)", "dockerd (docker-proxy)", None),
    ]  # fmt: skip


# -- checks that the work was really done ------------------------------------------------------


def bridge_subnet(d: Daemon) -> ipaddress.IPv4Network:
    out = d.cli.run("network", "inspect", "bridge", timeout=30).stdout
    nets = json.loads(out)
    configs = (nets[0].get("IPAM") or {}).get("Config") or [] if nets else []
    for c in configs:
        if c.get("Subnet") and ":" not in c["Subnet"]:
            return ipaddress.IPv4Network(c["Subnet"])
    raise procs.CommandFailed(f"{d.name}: `network inspect bridge` shows no IPv4 subnet: {out!r}")


def container_address(text: str) -> ipaddress.IPv4Interface | None:
    """The address in `ip -4 -o addr show eth0` output (None when eth0 has none)."""
    for line in text.splitlines():
        words = line.split()
        if "inet" in words[:-1]:
            return ipaddress.IPv4Interface(words[words.index("inet") + 1])
    return None


def host_has_gateway(bridge: str, subnet: ipaddress.IPv4Network) -> bool:
    out = procs.run(["ip", "-4", "-j", "addr", "show", "dev", bridge], timeout=30).stdout
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info", []):
            if ipaddress.IPv4Address(a["local"]) in subnet:
                return True
    return False


def check_bridge(d: Daemon, bridge: str) -> str:
    """Run a container on the default bridge and one with --network none; raise unless the
    first got an address on the daemon's bridge subnet (served by `bridge` on the host) and
    the second has no eth0. Returns what was seen, for the notes."""
    subnet = bridge_subnet(d)
    if not host_has_gateway(bridge, subnet):
        raise procs.CommandFailed(f"{d.name}: host bridge {bridge} has no address in {subnet}")
    out = d.cli.run(*BRIDGE_RUN, "ip", "-4", "-o", "addr", "show", "eth0", timeout=60).stdout
    addr = container_address(out)
    if addr is None or addr.ip not in subnet:
        raise procs.CommandFailed(
            f"{d.name}: container on the default bridge has no address in {subnet}: {out!r}"
        )
    links = d.cli.run(*NONE_RUN, "ip", "-o", "link", timeout=60).stdout
    names = sorted(
        {ln.split(":")[1].strip().split("@")[0] for ln in links.splitlines() if ":" in ln}
    )
    if names != ["lo"]:
        raise procs.CommandFailed(f"{d.name}: --network none container has links {names}")
    return f"container got {addr} on {bridge} ({subnet}); --network none: lo only"


# -- published port -------------------------------------------------------------------------


def fetch(port: int, token: str, timeout: float = 5.0) -> None:
    """One connection to 127.0.0.1:port: HTTP/1.0 GET /, read to EOF, check the token."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        chunks = []
        while True:
            data = s.recv(4096)
            if not data:
                break
            chunks.append(data)
    body = b"".join(chunks)
    if token.encode() not in body:
        raise procs.CommandFailed(
            f"127.0.0.1:{port}: reply without the container's token: {body[:120]!r}"
        )


def start_server(d: Daemon, token: str) -> tuple[str, int]:
    """A detached busybox httpd serving `token`, published on 127.0.0.1:<free port>.
    Returns (container id, host port) once a request through the port gets the token back."""
    script = f"mkdir -p /www && echo {token} > /www/index.html && exec httpd -f -p 80 -h /www"
    cid = d.cli.run(
        "run", "-d", "-p", "127.0.0.1::80", BUSYBOX_REF, "sh", "-c", script, timeout=60
    ).stdout.strip()
    mapping = d.cli.run("port", cid, "80/tcp", timeout=30).stdout.split()
    hostport = next((m for m in mapping if m.startswith("127.0.0.1:")), "")
    if not hostport:
        raise procs.CommandFailed(f"{d.name}: `docker port {cid[:12]} 80/tcp` said {mapping}")
    port = int(hostport.rsplit(":", 1)[1])
    deadline = time.monotonic() + 20
    while True:
        try:
            fetch(port, token, timeout=2)
            return cid, port
        except (OSError, procs.CommandFailed) as e:
            if time.monotonic() > deadline:
                raise procs.CommandFailed(f"{d.name}: 127.0.0.1:{port} never served: {e}")
            time.sleep(0.2)


def forward_policy() -> str:
    """The iptables filter FORWARD policy ("none" when there is no such chain)."""
    if procs.run(["nft", "list", "chain", "ip", "filter", "FORWARD"], check=False).returncode:
        return "none"
    out = procs.run(["iptables", "-w", "-S", "FORWARD"], timeout=30, check=False).stdout
    words = out.split()
    return words[2] if len(words) >= 3 and words[0] == "-P" else "unknown"


def check_across_bridge(d: Daemon, ip: str, token: str) -> str:
    """A second container on the same bridge fetches the server's page by its address:
    with br_netfilter on, this crosses iptables FORWARD, whose policy dockerd set to DROP."""
    out = d.cli.run(
        # (busybox 1.35's static wget crashes on -T: the time limit is timeout's)
        *BRIDGE_RUN,
        "timeout",
        "10",
        "wget",
        "-q",
        "-O",
        "-",
        f"http://{ip}/",
        timeout=60,
    ).stdout
    if token not in out:
        raise procs.CommandFailed(f"{d.name}: container-to-container fetch of {ip} got {out!r}")
    return (
        f"container to container on the bridge works (iptables FORWARD policy {forward_policy()})"
    )


def skiff_dnat(bridge: str, port: int) -> str:
    """The element of skiffd's nft map that sends 127.0.0.1:port to the container, e.g.
    '127.0.0.1 . 40123 : 10.210.3.2 . 80'; raises when it is not there."""
    table = f"skiff_{bridge}"
    out = procs.run(["nft", "-j", "list", "map", "ip", table, "tcp_ip"], timeout=30).stdout
    for obj in json.loads(out).get("nftables", []):
        for elem in (obj.get("map") or {}).get("elem", []):
            key, value = elem
            k = [str(x) for x in key["concat"]]
            if k == ["127.0.0.1", str(port)]:
                v = [str(x) for x in value["concat"]]
                return f"127.0.0.1 . {port} : {v[0]} . {v[1]}"
    raise procs.CommandFailed(f"skiffd: no DNAT element for 127.0.0.1:{port} in table {table}")


def listeners(port: int) -> list[str]:
    """Processes listening on TCP 127.0.0.1:port (`ss -Hltnp`)."""
    out = procs.run(["ss", "-Hltnp", f"sport = :{port}"], timeout=30, check=False).stdout
    return [ln.split("users:")[-1] for ln in out.splitlines() if ln.strip()]


def loop(port: int, token: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fetch(port, token)
    return (time.perf_counter() - start) / n


# -- the workload ---------------------------------------------------------------------------


def _paired(d: Daemon) -> Callable[[], dict[str, float]]:
    """One sample: a bridge run and a none run back to back (order alternating)."""
    turn = [0]

    def measure() -> dict[str, float]:
        turn[0] += 1
        order = (BRIDGE_RUN, NONE_RUN) if turn[0] % 2 else (NONE_RUN, BRIDGE_RUN)
        t = {args: d.cli.timed(*args, "true", timeout=60) for args in order}
        return {
            "bridge": t[BRIDGE_RUN],
            "none": t[NONE_RUN],
            "added": t[BRIDGE_RUN] - t[NONE_RUN],
        }

    return measure


def _ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def run(ctx: Context, rows: dict[str, Row], budget: float) -> None:
    started = time.monotonic()
    daemons: dict[str, Daemon] = {}
    unavailable: dict[str, str] = {}
    bridges = {"skiffd": ctx.bridge_names[0], "dockerd": ctx.bridge_names[1]}
    # dockerd first: it creates the iptables FORWARD chain (policy DROP) that skiffd must
    # then see to add its accept rules for its own bridge.
    for name, get in (("dockerd", ctx.dockerd_bridged), ("skiffd", ctx.skiffd_bridged)):
        try:
            daemons[name] = get()
        except (Unavailable, RuntimeError) as e:
            unavailable[name] = str(e)
    try:
        _measure(ctx, rows, budget, daemons, unavailable, bridges, started)
    finally:
        problems = []
        for key in ("skiffd-bridged", "dockerd-bridged"):
            problems += ctx.release(key)
        for p in problems:
            ctx.log(f"  network clean-up: {p}")


def _measure(
    ctx: Context,
    rows: dict[str, Row],
    budget: float,
    daemons: dict[str, Daemon],
    unavailable: dict[str, str],
    bridges: dict[str, str],
    started: float,
) -> None:
    seen: dict[str, str] = {}

    def warm(name: str, d: Daemon) -> Callable[[], None]:
        def warmup() -> None:
            seen[name] = check_bridge(d, bridges[name])
            d.cli.timed(*BRIDGE_RUN, "true", timeout=60)
            d.cli.timed(*NONE_RUN, "true", timeout=60)

        return warmup

    sides = [Side(n, _paired(d), warm(n, d)) for n, d in (sorted(daemons.items(), reverse=True))]
    run_budget = budget * 0.6
    out = ctx.alternate(sides, runs=ctx.runs * 6, budget_s=run_budget)
    fill(rows["net-run-bridge"], out, "skiffd", "dockerd", "bridge", unavailable)
    fill(rows["net-bridge-added"], out, "skiffd", "dockerd", "added", unavailable)
    for name in ("skiffd", "dockerd"):
        b, n = out.values(name, "bridge"), out.values(name, "none")
        if b and n:
            rows["net-bridge-added"].notes.append(
                f"{name}: median bridge {_ms(statistics.median(b))} − median none "
                f"{_ms(statistics.median(n))} = {_ms(statistics.median(b) - statistics.median(n))}"
                f" (difference of medians); the row is the median of the per-round differences"
            )
        if name in seen:
            rows["net-run-bridge"].notes.append(f"{name}: {seen[name]}")
    rows["net-run-bridge"].notes.append(
        "second daemons with bridge networking: skiffd `--bridge "
        f"{bridges['skiffd']}`; dockerd `--bridge {bridges['dockerd']} --iptables=true` "
        "(a bridge the bench made on a free /24); the same docker CLI"
    )
    rows["net-bridge-added"].notes.append(
        "each sample: `run --rm busybox true` on the default bridge and with `--network none`, "
        "back to back on the same daemon, their order alternating; sample = bridge − none"
    )
    _ports(ctx, rows["net-port-conn"], budget - (time.monotonic() - started), daemons,
           unavailable, bridges)  # fmt: skip


def _ports(
    ctx: Context,
    row: Row,
    budget: float,
    daemons: dict[str, Daemon],
    unavailable: dict[str, str],
    bridges: dict[str, str],
) -> None:
    n = connections(ctx.quick)
    errors = dict(unavailable)
    sides = []
    seen: dict[str, str] = {}
    for name, d in sorted(daemons.items(), reverse=True):
        token = f"skiff-bench-{secrets.token_hex(8)}"
        try:
            cid, port = start_server(d, token)
            ip = d.cli.run(
                "inspect", "-f", "{{.NetworkSettings.IPAddress}}", cid, timeout=30
            ).stdout.strip()
            across = check_across_bridge(d, ip, token)
            if name == "skiffd":
                dnat = skiff_dnat(bridges["skiffd"], port)
                if not ip or f": {ip} . 80" not in dnat:
                    raise procs.CommandFailed(
                        f"skiffd: DNAT {dnat} does not lead to the container's address {ip!r}"
                    )
                proxies = [u for u in listeners(port) if "docker-proxy" in u]
                if proxies:
                    raise procs.CommandFailed(f"skiffd: a userland proxy listens: {proxies}")
                seen[name] = f"skiffd: nft DNAT {dnat}, no process listening on the port; {across}"
            else:
                users = listeners(port)
                seen[name] = (
                    f"dockerd: listening on 127.0.0.1:{port}: {', '.join(users) or 'none'}; "
                    f"{across}"
                )
        except procs.CommandFailed as e:
            errors[name] = str(e)
            continue

        def measure(port: int = port, token: str = token, count: int = n) -> float:
            return loop(port, token, count)

        def warmup(port: int = port, token: str = token) -> float:
            return loop(port, token, 20)

        sides.append(Side(name, measure, warmup))
    out = ctx.alternate(sides, runs=ctx.runs * 2, budget_s=max(budget, 10))
    fill(row, out, "skiffd", "dockerd", unavailable=errors)
    rates = []
    for name in ("skiffd", "dockerd"):
        v = out.values(name)
        if v:
            rates.append(f"{name} {1 / statistics.median(v):.0f} connections/s")
    if rates:
        row.notes.append("median rate: " + ", ".join(rates))
    row.notes.append(
        f"busybox `httpd -f -p 80` in a detached container, `-p 127.0.0.1::80`; a Python client "
        f"on the host opens {n} connections in a row (connect, `GET / HTTP/1.0`, read to EOF, "
        "check the container's random token, close); sample = wall time / connections"
    )
    row.notes += list(seen.values())
