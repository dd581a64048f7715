"""Host networking state that the bridged engines of the `network` workload change, and its
exact undoing: a free private /24 for a bench bridge, a snapshot of the iptables rules, chains
and policies before dockerd starts with `--iptables=true`, and the removal afterwards of only
what that dockerd added (and of what a skiffd left for its own bridge).

The parsing and the decisions are pure functions of `iptables -S` text (unit-tested); the
commands run only in snapshot(), remove_docker_rules() and remove_skiff_network().
Nothing that was there before the snapshot is ever removed, and nothing added by someone
else meanwhile unless it is Docker's and names the bench's bridge or subnet.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

TABLES = ("filter", "nat", "mangle", "raw")
# Bench bridges are numbered from here: outside skiffd's default pool (10.210.0.0/16) and
# Docker's (172.17.0.0/16 and up), so that neither daemon's own choice races the bench's.
BENCH_POOL = ipaddress.IPv4Network("10.213.0.0/16")
BRIDGE_NF = Path("/proc/sys/net/bridge")


@dataclass
class TableState:
    """One iptables table as `iptables -t T -S` prints it."""

    policies: dict[str, str] = field(default_factory=dict)  # built-in chain -> policy
    chains: set[str] = field(default_factory=set)  # user chains (-N)
    rules: list[str] = field(default_factory=list)  # "-A CHAIN …" lines, in order


@dataclass
class Snapshot:
    tables: dict[str, TableState | None]  # None: the table did not exist (nft view)
    bridge_nf: dict[str, str]  # bridge-nf-call-* sysctl -> value ("" when absent)


def parse_rules(text: str) -> TableState:
    """`iptables -S` output -> policies, user chains and rules."""
    state = TableState()
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "-P":
            state.policies[words[1]] = words[2]
        elif len(words) == 2 and words[0] == "-N":
            state.chains.add(words[1])
        elif len(words) >= 2 and words[0] == "-A":
            state.rules.append(line.strip())
    return state


def _rule_chain(rule: str) -> str:
    return rule.split()[1]


def _rule_target(rule: str) -> str:
    words = shlex.split(rule)
    for flag in ("-j", "-g"):
        if flag in words[:-1]:
            return words[words.index(flag) + 1]
    return ""


def is_dockers(rule: str, bridge: str, subnet: str, new_chains: set[str]) -> bool:
    """Whether a rule is one the bench's dockerd added: it lives in or jumps to a DOCKER*
    chain that did not exist before, or it names the bench's bridge or subnet (MASQUERADE,
    FORWARD accepts). skiff's own rules (comment "skiff") never are."""
    if '"skiff"' in rule or "--comment skiff" in rule:
        return False
    if _rule_chain(rule) in new_chains or _rule_target(rule) in new_chains:
        return True
    words = shlex.split(rule)
    return bridge in words or subnet in words


def cleanup_plan(
    table: str, before: TableState | None, after: TableState, bridge: str, subnet: str
) -> list[list[str]]:
    """iptables argument lists that undo what the bench's dockerd added to one table:
    delete its new rules (jumps first, so chains are free), flush and delete the DOCKER*
    chains that did not exist before, and put back the built-in policies it changed."""
    old_rules = set(before.rules) if before else set()
    old_chains = before.chains if before else set()
    new_chains = {c for c in after.chains - old_chains if c.startswith("DOCKER")}
    plan: list[list[str]] = []
    for rule in after.rules:
        if rule in old_rules or _rule_chain(rule) in new_chains:
            continue  # there before, or goes with its chain
        if is_dockers(rule, bridge, subnet, new_chains):
            plan.append(["-t", table, "-D", *shlex.split(rule)[1:]])
    for chain in sorted(new_chains):
        plan.append(["-t", table, "-F", chain])
    for chain in sorted(new_chains):
        plan.append(["-t", table, "-X", chain])
    for chain, policy in sorted(after.policies.items()):
        was = before.policies.get(chain, "ACCEPT") if before else "ACCEPT"
        if policy != was:
            plan.append(["-t", table, "-P", chain, was])
    return plan


def is_empty(state: TableState) -> bool:
    """No user chains, every built-in chain accepting, and no rules but skiff's FORWARD
    accepts: a table that filters nothing. (A skiffd adds its accepts whenever the FORWARD
    chain exists, so other skiffds on the host add theirs while the bench's dockerd runs;
    without the table they are not needed, and skiffd looks for the chain before using it.)"""
    skiff_accepts = all(
        _rule_chain(r) == "FORWARD" and "--comment skiff" in r and r.endswith("-j ACCEPT")
        for r in state.rules
    )
    return skiff_accepts and not state.chains and set(state.policies.values()) <= {"ACCEPT"}


def pick_subnet(
    used: Iterable[ipaddress.IPv4Network], pool: ipaddress.IPv4Network = BENCH_POOL
) -> ipaddress.IPv4Network:
    """The first /24 of `pool` that overlaps no route or address in `used` (default routes
    excepted) and is not Docker's 172.17.0.0/16."""
    taken = [n for n in used if n.prefixlen > 0]
    docker0 = ipaddress.IPv4Network("172.17.0.0/16")
    for candidate in pool.subnets(new_prefix=24):
        if candidate.overlaps(docker0) or any(candidate.overlaps(n) for n in taken):
            continue
        return candidate
    raise RuntimeError(f"no free /24 left in {pool} for a bench bridge")


# -- the commands ---------------------------------------------------------------------------


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 route's destination and every address's network on the host."""
    nets: list[ipaddress.IPv4Network] = []
    routes = _run(["ip", "-4", "-j", "route", "show", "table", "all"])
    for r in json.loads(routes.stdout or "[]"):
        dst = r.get("dst", "")
        if dst and dst != "default":
            nets.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
    addrs = _run(["ip", "-4", "-j", "addr"])
    for link in json.loads(addrs.stdout or "[]"):
        for a in link.get("addr_info", []):
            nets.append(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
    return nets


def _table_exists(table: str) -> bool:
    # Asked through nft: listing with iptables-nft could create the table as a side effect.
    if not shutil.which("nft"):
        return True
    return _run(["nft", "list", "table", "ip", table]).returncode == 0


def _read_table(table: str) -> TableState | None:
    if not _table_exists(table):
        return None
    res = _run(["iptables", "-w", "-t", table, "-S"])
    return parse_rules(res.stdout) if res.returncode == 0 else None


def _bridge_nf() -> dict[str, str]:
    out = {}
    for name in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables"):
        try:
            out[name] = (BRIDGE_NF / name).read_text().strip()
        except OSError:
            out[name] = ""
    return out


def snapshot() -> Snapshot:
    return Snapshot({t: _read_table(t) for t in TABLES}, _bridge_nf())


def remove_docker_rules(before: Snapshot, bridge: str, subnet: str) -> list[str]:
    """Undo what a dockerd started after `before` added for `bridge`/`subnet`; returns the
    problems (never raises). A table that did not exist before and is empty afterwards is
    deleted."""
    problems: list[str] = []
    if not shutil.which("iptables"):
        return problems
    for table in TABLES:
        after = _read_table(table)
        if after is None:
            continue
        for args in cleanup_plan(table, before.tables.get(table), after, bridge, subnet):
            res = _run(["iptables", "-w", *args])
            if res.returncode != 0:
                problems.append(f"iptables {' '.join(args)}: {res.stderr.strip()}")
        if before.tables.get(table) is None:
            now = _read_table(table)
            if now is not None and is_empty(now) and shutil.which("nft"):
                _run(["nft", "delete", "table", "ip", table])
    for name, value in before.bridge_nf.items():
        path = BRIDGE_NF / name
        try:
            if value and path.read_text().strip() != value:
                path.write_text(value)
        except OSError as e:
            problems.append(f"{path}: {e.strerror or e}")
    return problems


def remove_skiff_network(bridge: str) -> list[str]:
    """Remove what skiffd made for its default bridge `bridge` and left when it exited: the
    two iptables FORWARD accepts (comment "skiff"), its nft table `skiff_<bridge>` and the
    bridge device. Returns the problems (never raises)."""
    problems: list[str] = []
    if shutil.which("iptables") and _table_exists("filter"):
        for direction in ("-i", "-o"):
            rule = [direction, bridge, "-j", "ACCEPT", "-m", "comment", "--comment", "skiff"]
            while _run(["iptables", "-w", "-C", "FORWARD", *rule]).returncode == 0:
                res = _run(["iptables", "-w", "-D", "FORWARD", *rule])
                if res.returncode != 0:
                    problems.append(f"iptables -D FORWARD {' '.join(rule)}: {res.stderr.strip()}")
                    break
    table = f"skiff_{bridge}".replace("-", "_")
    if shutil.which("nft") and _run(["nft", "list", "table", "ip", table]).returncode == 0:
        res = _run(["nft", "delete", "table", "ip", table])
        if res.returncode != 0:
            problems.append(f"nft delete table ip {table}: {res.stderr.strip()}")
    if _run(["ip", "link", "show", bridge]).returncode == 0:
        res = _run(["ip", "link", "del", bridge])
        if res.returncode != 0:
            problems.append(f"ip link del {bridge}: {res.stderr.strip()}")
    return problems
