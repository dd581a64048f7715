"""skiff's packet filtering and NAT: one nftables table of its own, plus the accept rules
Docker's FORWARD-DROP policy needs.

    table ip <name>
      set bridges        every skiff bridge            (isolation between networks)
      set masq_nets      subnets with outbound NAT     (not --internal ones)
      map {tcp,udp}_any  hostPort -> container ip . port          (published on all addresses)
      map {tcp,udp}_ip   hostIP . hostPort -> container ip . port (published on one address)
      chain ports        DNAT through those maps, for traffic to a local address
      chain prerouting / output   nat hooks jumping to ports
      chain postrouting  masquerade: outbound, loopback-published and hairpin traffic
      chain forward      per-bridge verdict map -> chain net_<bridge> (internal, icc, isolation)

Nothing outside that table is touched, except that when the host has an iptables
`filter FORWARD` chain (dockerd sets its policy to DROP) skiff inserts two ACCEPT rules per bridge
there, and removes exactly those when the network goes.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from skiff.errors import InvalidArgument
from skiff.linux import nftables


@dataclass(frozen=True)
class PortRule:
    proto: str  # "tcp" | "udp"
    host_ip: str  # "" = every address
    host_port: int
    container_ip: str
    container_port: int

    def element(self) -> tuple[str, str]:
        """(map name, element text) for this rule."""
        if self.proto not in ("tcp", "udp"):
            raise InvalidArgument(f"unsupported protocol {self.proto!r} (tcp or udp)")
        target = f"{self.container_ip} . {self.container_port}"
        if self.host_ip in ("", "0.0.0.0"):
            return f"{self.proto}_any", f"{self.host_port} : {target}"
        return f"{self.proto}_ip", f"{self.host_ip} . {self.host_port} : {target}"

    def key(self) -> tuple[str, str]:
        if self.host_ip in ("", "0.0.0.0"):
            return f"{self.proto}_any", f"{self.host_port}"
        return f"{self.proto}_ip", f"{self.host_ip} . {self.host_port}"


class Firewall:
    """The nftables table `name` (one per daemon; tests use their own)."""

    def __init__(self, name: str = "skiff") -> None:
        if not name.replace("_", "").isalnum():
            raise InvalidArgument(f"invalid nftables table name {name!r}")
        self.name = name

    # -- table ---------------------------------------------------------------------------
    def ensure(self) -> None:
        t = f"table ip {self.name}"
        maps = "".join(
            f"  map {p}_any {{ type inet_service : ipv4_addr . inet_service; }}\n"
            f"  map {p}_ip {{ type ipv4_addr . inet_service : ipv4_addr . inet_service; }}\n"
            for p in ("tcp", "udp")
        )
        nftables.apply(
            f"""{t} {{
  set bridges {{ type ifname; }}
  set masq_nets {{ type ipv4_addr; flags interval; }}
  set all_nets {{ type ipv4_addr; flags interval; }}
{maps}  map net_verdicts {{ type ifname : verdict; }}
  chain ports {{
    meta l4proto tcp dnat ip to ip daddr . tcp dport map @tcp_ip
    meta l4proto tcp dnat ip to tcp dport map @tcp_any
    meta l4proto udp dnat ip to ip daddr . udp dport map @udp_ip
    meta l4proto udp dnat ip to udp dport map @udp_any
  }}
  chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
  chain output {{ type nat hook output priority -100; policy accept; }}
  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
  chain forward {{ type filter hook forward priority filter; policy accept; }}
}}
flush chain ip {self.name} prerouting
flush chain ip {self.name} output
flush chain ip {self.name} postrouting
flush chain ip {self.name} forward
add rule ip {self.name} prerouting fib daddr type local jump ports
add rule ip {self.name} output fib daddr type local jump ports
add rule ip {self.name} postrouting ip saddr @masq_nets oifname != @bridges masquerade
add rule ip {self.name} postrouting oifname @bridges ip saddr 127.0.0.0/8 masquerade
add rule ip {self.name} postrouting oifname @bridges ct status dnat ip saddr @all_nets masquerade
add rule ip {self.name} forward ct state established,related accept
add rule ip {self.name} forward iifname vmap @net_verdicts
"""
        )

    def destroy(self) -> None:
        if nftables.table_exists("ip", self.name):
            nftables.apply(f"delete table ip {self.name}\n")

    # -- networks ------------------------------------------------------------------------
    def add_network(self, bridge: str, subnet: str, *, internal: bool, icc: bool) -> None:
        chain = _chain(bridge)
        lines = [
            f"add chain ip {self.name} {chain}",
            f"flush chain ip {self.name} {chain}",
            f'add element ip {self.name} bridges {{ "{bridge}" }}',
            f"add element ip {self.name} all_nets {{ {subnet} }}",
        ]
        if internal:
            lines.append(f'add rule ip {self.name} {chain} oifname != "{bridge}" drop')
        else:
            lines.append(f"add element ip {self.name} masq_nets {{ {subnet} }}")
            # a container may not reach another skiff network's containers
            lines.append(
                f'add rule ip {self.name} {chain} oifname @bridges oifname != "{bridge}" drop'
            )
        if not icc:
            lines.append(f'add rule ip {self.name} {chain} oifname "{bridge}" drop')
        lines.append(f'add element ip {self.name} net_verdicts {{ "{bridge}" : jump {chain} }}')
        nftables.apply("\n".join(lines) + "\n")
        if internal:
            # nothing may come in from outside either
            nftables.apply(
                f'add rule ip {self.name} forward oifname "{bridge}" iifname != "{bridge}" drop\n'
            )
        _docker_forward_accept(bridge, add=True)

    def remove_network(self, bridge: str, subnet: str) -> None:
        chain = _chain(bridge)
        lines = []
        for set_name, elem in (
            ("net_verdicts", f'"{bridge}"'),
            ("bridges", f'"{bridge}"'),
            ("masq_nets", subnet),
            ("all_nets", subnet),
        ):
            if self._has_element(set_name, elem.strip('"')):
                lines.append(f"delete element ip {self.name} {set_name} {{ {elem} }}")
        for handle in self._rule_handles("forward", f'"{bridge}"'):
            lines.append(f"delete rule ip {self.name} forward handle {handle}")
        if nftables.list_json("chain", "ip", self.name, chain):
            lines.append(f"flush chain ip {self.name} {chain}")
            lines.append(f"delete chain ip {self.name} {chain}")
        if lines:
            nftables.apply("\n".join(lines) + "\n")
        _docker_forward_accept(bridge, add=False)

    # -- ports ---------------------------------------------------------------------------
    def add_ports(self, rules: list[PortRule]) -> None:
        if not rules:
            return
        nftables.apply(
            "".join(
                f"add element ip {self.name} {m} {{ {e} }}\n"
                for m, e in (r.element() for r in rules)
            )
        )

    def remove_ports(self, rules: list[PortRule]) -> None:
        present = []
        for r in rules:
            m, k = r.key()
            if self._has_element(m, k):
                present.append(f"delete element ip {self.name} {m} {{ {k} }}\n")
        if present:
            nftables.apply("".join(present))

    def port_elements(self) -> dict[str, list[str]]:
        """Map name -> element keys, for reconciling after a crash."""
        out: dict[str, list[str]] = {}
        for obj in nftables.list_json("table", "ip", self.name):
            m = obj.get("map")
            if m:
                out[m["name"]] = [_elem_key(e) for e in m.get("elem", [])]
        return out

    # -- helpers -------------------------------------------------------------------------
    def _has_element(self, set_name: str, key: str) -> bool:
        for obj in nftables.list_json("table", "ip", self.name):
            s = obj.get("set") or obj.get("map")
            if s and s["name"] == set_name:
                return key in {_elem_key(e) for e in s.get("elem", [])}
        return False

    def _rule_handles(self, chain: str, needle: str) -> list[int]:
        proc = subprocess.run(
            [shutil.which("nft") or "nft", "-a", "list", "chain", "ip", self.name, chain],
            capture_output=True,
            text=True,
        )
        return [
            int(line.rsplit("# handle", 1)[1])
            for line in proc.stdout.splitlines()
            if needle in line and "# handle" in line
        ]


def _chain(bridge: str) -> str:
    return "net_" + bridge.replace("-", "_").replace(".", "_")


def _elem_key(e: object) -> str:
    """Render the key of an element of `nft -j` output the way skiff's scripts write it.

    Set elements are plain values or {"prefix": …}; map elements are [key, value] pairs.
    """
    if isinstance(e, list) and len(e) == 2:
        e = e[0]
    if isinstance(e, dict):
        if "concat" in e:
            return " . ".join(_elem_key(x) for x in e["concat"])
        if "prefix" in e:
            return f"{e['prefix']['addr']}/{e['prefix']['len']}"
        if "elem" in e:
            return _elem_key(e["elem"].get("val"))
    return str(e)


def _iptables() -> str | None:
    return shutil.which("iptables")


def _docker_forward_accept(bridge: str, *, add: bool) -> None:
    """Keep skiff's bridge forwarding when the host's iptables FORWARD chain drops by default
    (dockerd sets that policy). Only the two rules skiff added are ever removed."""
    ipt = _iptables()
    if not ipt:
        return
    # Look with nft: listing with iptables-nft would create the table as a side effect.
    if not nftables.list_json("chain", "ip", "filter", "FORWARD"):
        return
    rules = (
        ["-i", bridge, "-j", "ACCEPT", "-m", "comment", "--comment", "skiff"],
        ["-o", bridge, "-j", "ACCEPT", "-m", "comment", "--comment", "skiff"],
    )
    for rule in rules:
        present = (
            subprocess.run([ipt, "-w", "-C", "FORWARD", *rule], capture_output=True).returncode == 0
        )
        if add and not present:
            subprocess.run([ipt, "-w", "-I", "FORWARD", *rule], capture_output=True, check=False)
        elif not add and present:
            subprocess.run([ipt, "-w", "-D", "FORWARD", *rule], capture_output=True, check=False)
