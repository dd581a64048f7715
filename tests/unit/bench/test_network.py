"""The `network` workload's pure parts: undoing dockerd's iptables changes exactly, picking a
free subnet for a bench bridge, reading a container's address."""

from __future__ import annotations

import ipaddress

import pytest
from lib.netfilter import cleanup_plan, is_empty, parse_rules, pick_subnet
from workloads.network import container_address, rows

BEFORE_FILTER = """\
-P INPUT ACCEPT
-P FORWARD ACCEPT
-P OUTPUT ACCEPT
-A FORWARD -i other0 -j ACCEPT
"""

# What dockerd 20.10 leaves in the filter table with `--bridge skbd1 --iptables=true`, plus a
# skiff accept rule and a stranger's rule added meanwhile.
AFTER_FILTER = """\
-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N DOCKER
-N DOCKER-ISOLATION-STAGE-1
-N DOCKER-ISOLATION-STAGE-2
-N DOCKER-USER
-A FORWARD -o sk12ab -m comment --comment skiff -j ACCEPT
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o skbd1 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o skbd1 -j DOCKER
-A FORWARD -i skbd1 ! -o skbd1 -j ACCEPT
-A FORWARD -i skbd1 -o skbd1 -j ACCEPT
-A FORWARD -i other0 -j ACCEPT
-A FORWARD -i stranger -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i skbd1 ! -o skbd1 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o skbd1 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
"""

AFTER_NAT = """\
-P PREROUTING ACCEPT
-P INPUT ACCEPT
-P OUTPUT ACCEPT
-P POSTROUTING ACCEPT
-N DOCKER
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 10.213.0.0/24 ! -o skbd1 -j MASQUERADE
-A DOCKER -i skbd1 -j RETURN
"""


def test_parse_rules() -> None:
    state = parse_rules(AFTER_FILTER)
    assert state.policies == {"INPUT": "ACCEPT", "FORWARD": "DROP", "OUTPUT": "ACCEPT"}
    assert state.chains == {
        "DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER",
    }  # fmt: skip
    assert state.rules[0] == "-A FORWARD -o sk12ab -m comment --comment skiff -j ACCEPT"
    assert len(state.rules) == 14


def test_cleanup_plan_removes_only_what_dockerd_added() -> None:
    plan = cleanup_plan(
        "filter", parse_rules(BEFORE_FILTER), parse_rules(AFTER_FILTER), "skbd1", "10.213.0.0/24"
    )
    deletes = [" ".join(a[3:]) for a in plan if a[2] == "-D"]
    assert deletes == [
        "FORWARD -j DOCKER-USER",
        "FORWARD -j DOCKER-ISOLATION-STAGE-1",
        "FORWARD -o skbd1 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "FORWARD -o skbd1 -j DOCKER",
        "FORWARD -i skbd1 ! -o skbd1 -j ACCEPT",
        "FORWARD -i skbd1 -o skbd1 -j ACCEPT",
    ]  # skiff's rule, the one there before and the stranger's stay
    chains = ["DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER"]
    assert [a[3] for a in plan if a[2] == "-F"] == chains
    assert [a[3] for a in plan if a[2] == "-X"] == chains
    assert plan[-1] == ["-t", "filter", "-P", "FORWARD", "ACCEPT"]
    # the order matters: jumps go before their chains are flushed and deleted
    kinds = [a[2] for a in plan]
    assert kinds == sorted(kinds, key=["-D", "-F", "-X", "-P"].index)


def test_cleanup_plan_of_a_table_dockerd_created() -> None:
    plan = cleanup_plan("nat", None, parse_rules(AFTER_NAT), "skbd1", "10.213.0.0/24")
    assert plan == [
        ["-t", "nat", "-D", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"],
        ["-t", "nat", "-D", "OUTPUT", "!", "-d", "127.0.0.0/8", "-m", "addrtype",
         "--dst-type", "LOCAL", "-j", "DOCKER"],
        ["-t", "nat", "-D", "POSTROUTING", "-s", "10.213.0.0/24", "!", "-o", "skbd1",
         "-j", "MASQUERADE"],
        ["-t", "nat", "-F", "DOCKER"],
        ["-t", "nat", "-X", "DOCKER"],
    ]  # fmt: skip


def test_cleanup_plan_leaves_another_dockerds_chains() -> None:
    """DOCKER chains that were there before belong to someone else: only rules naming the
    bench's bridge or subnet go, and the policy that was already DROP stays."""
    before = parse_rules(AFTER_FILTER.replace("skbd1", "docker0"))
    after = parse_rules(AFTER_FILTER.replace("skbd1", "docker0") + "-A DOCKER -o skbd1 -j X\n")
    plan = cleanup_plan("filter", before, after, "skbd1", "10.213.0.0/24")
    assert plan == [["-t", "filter", "-D", "DOCKER", "-o", "skbd1", "-j", "X"]]


def test_is_empty() -> None:
    assert is_empty(parse_rules("-P INPUT ACCEPT\n-P FORWARD ACCEPT\n"))
    assert not is_empty(parse_rules("-P FORWARD DROP\n"))
    assert not is_empty(parse_rules("-P FORWARD ACCEPT\n-A FORWARD -j ACCEPT\n"))
    assert not is_empty(parse_rules("-N DOCKER\n"))
    skiffs = "-A FORWARD -o skiff0 -m comment --comment skiff -j ACCEPT\n"
    assert is_empty(parse_rules("-P FORWARD ACCEPT\n" + skiffs))
    assert not is_empty(parse_rules("-P FORWARD DROP\n" + skiffs))


def test_pick_subnet_skips_used_and_default_route() -> None:
    net = ipaddress.IPv4Network
    used = [net("0.0.0.0/0"), net("10.213.0.0/24"), net("10.213.1.7/32")]
    assert pick_subnet(used) == net("10.213.2.0/24")
    assert pick_subnet([]) == net("10.213.0.0/24")
    # never Docker's default 172.17.0.0/16, even when the pool would offer it
    assert pick_subnet([net("172.16.0.0/16")], pool=net("172.16.0.0/14")) == net("172.18.0.0/24")
    with pytest.raises(RuntimeError, match="no free /24"):
        pick_subnet([net("10.213.0.0/16")])


def test_container_address() -> None:
    out = "2: eth0    inet 10.210.3.2/24 brd 10.210.3.255 scope global eth0\\       valid_lft forever\n"
    assert container_address(out) == ipaddress.IPv4Interface("10.210.3.2/24")
    assert container_address("") is None


def test_rows_have_the_issue_goal() -> None:
    by_id = {r.id: r for r in rows(False)}
    goal = by_id["net-bridge-added"].goal
    assert goal is not None and (goal.kind, goal.limit) == ("absolute", 0.010)
    assert "500 in a row" in by_id["net-port-conn"].title
    assert "100 in a row" in {r.id: r for r in rows(True)}["net-port-conn"].title
