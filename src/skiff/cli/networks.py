"""Network verbs: network create, connect, disconnect, inspect, ls, rm, prune."""

from __future__ import annotations

import sys
from typing import Any

from skiff.cli.flags import LIST, STR, Command, Flag, parse_filters, parse_kv, prune_command
from skiff.cli.main import Context, ExitStatus, for_each
from skiff.client.api import q

LS = Command(
    "network ls",
    "List networks",
    flags=[
        Flag(
            "filter",
            "f",
            LIST,
            metavar="filter",
            help="Provide filter values (e.g. 'driver=bridge')",
        ),
        Flag("format", kind=STR, default="", help="Format output using a custom template"),
        Flag("no-trunc", help="Do not truncate the output"),
        Flag("quiet", "q", help="Only display network IDs"),
    ],
    example="skiff network ls --format '{{.Name}} {{.Driver}}'",
    max_args=0,
    aliases=("skiff network list",),
)

HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}


class NetworkRow:
    def __init__(self, n: dict[str, Any], trunc: bool) -> None:
        self.n, self.trunc = n, trunc

    @property
    def ID(self) -> str:
        ident = str(self.n.get("Id", ""))
        return ident[:12] if self.trunc else ident

    @property
    def Name(self) -> str:
        return str(self.n.get("Name", ""))

    @property
    def Driver(self) -> str:
        return str(self.n.get("Driver", ""))

    @property
    def Scope(self) -> str:
        return str(self.n.get("Scope", ""))

    @property
    def IPv6(self) -> str:
        return "true" if self.n.get("EnableIPv6") else "false"

    @property
    def Internal(self) -> str:
        return "true" if self.n.get("Internal") else "false"

    @property
    def Labels(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted((self.n.get("Labels") or {}).items()))

    def Label(self, name: str) -> str:
        return str((self.n.get("Labels") or {}).get(name, ""))

    @property
    def CreatedAt(self) -> str:
        return str(self.n.get("Created", ""))

    def to_json(self) -> dict[str, str]:
        return {
            k: getattr(self, k)
            for k in ("CreatedAt", "Driver", "ID", "IPv6", "Internal", "Labels", "Name", "Scope")
        }


def ls(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.output import render

    opts, _ = LS.parse(argv)
    nets = ctx.client.get_json("/networks", {"filters": parse_filters(opts.filter)})
    rows = [NetworkRow(n, not opts.no_trunc) for n in sorted(nets, key=lambda n: n.get("Name", ""))]
    render(
        opts.format,
        rows,
        HEADERS,
        "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
        quiet_field="ID" if opts.quiet else None,
    )
    return 0


CREATE = Command(
    "network create",
    "Create a network",
    usage="[OPTIONS] NETWORK",
    flags=[
        Flag("attachable", help="Enable manual container attachment"),
        Flag(
            "aux-address",
            kind=LIST,
            metavar="map",
            help="Auxiliary IPv4 or IPv6 addresses used by Network driver",
        ),
        Flag("driver", "d", STR, "bridge", help="Driver to manage the Network"),
        Flag(
            "gateway",
            kind=LIST,
            metavar="strings",
            help="IPv4 or IPv6 Gateway for the master subnet",
        ),
        Flag("internal", help="Restrict external access to the network"),
        Flag(
            "ip-range", kind=LIST, metavar="strings", help="Allocate container ip from a sub-range"
        ),
        Flag("ipam-driver", kind=STR, default="default", help="IP Address Management Driver"),
        Flag("ipam-opt", kind=LIST, metavar="map", help="Set IPAM driver specific options"),
        Flag("ipv6", help="Enable IPv6 networking"),
        Flag("label", kind=LIST, metavar="list", help="Set metadata on a network"),
        Flag("opt", "o", LIST, metavar="map", help="Set driver specific options"),
        Flag("scope", kind=STR, default="", help="Control the network's scope"),
        Flag(
            "subnet",
            kind=LIST,
            metavar="strings",
            help="Subnet in CIDR format that represents a network segment",
        ),
    ],
    example="skiff network create --subnet 10.89.0.0/24 appnet",
    min_args=1,
    max_args=1,
)


def create(ctx: Context, argv: list[str]) -> int:
    opts, args = CREATE.parse(argv)
    if len(opts.gateway) > len(opts.subnet) or len(opts.ip_range) > len(opts.subnet):
        raise ExitStatus(1, "skiff: every --gateway and --ip-range needs a matching --subnet")
    configs = []
    aux = parse_kv(opts.aux_address)
    for i, subnet in enumerate(opts.subnet):
        cfg: dict[str, Any] = {"Subnet": subnet}
        if i < len(opts.gateway):
            cfg["Gateway"] = opts.gateway[i]
        if i < len(opts.ip_range):
            cfg["IPRange"] = opts.ip_range[i]
        if aux and i == 0:
            cfg["AuxiliaryAddresses"] = aux
        configs.append(cfg)
    body: dict[str, Any] = {
        "Name": args[0],
        "Driver": opts.driver,
        "Options": parse_kv(opts.opt),
        "IPAM": {"Driver": opts.ipam_driver, "Config": configs, "Options": parse_kv(opts.ipam_opt)},
        "Internal": bool(opts.internal),
        "Attachable": bool(opts.attachable),
        "Labels": parse_kv(opts.label),
    }
    if opts.ipv6:
        body["EnableIPv6"] = True
    if opts.scope:
        body["Scope"] = opts.scope
    doc = ctx.client.post_json("/networks/create", body=body) or {}
    if doc.get("Warning"):
        sys.stderr.write(f"WARNING: {doc['Warning']}\n")
    print(doc.get("Id", ""))
    return 0


RM = Command(
    "network rm",
    "Remove one or more networks",
    usage="NETWORK [NETWORK...]",
    flags=[Flag("force", "f", help="Do not error if the network does not exist")],
    example="skiff network rm appnet",
    min_args=1,
    aliases=("skiff network remove",),
    args_complete="network",
)


def rm(ctx: Context, argv: list[str]) -> int:
    opts, args = RM.parse(argv)
    return for_each(
        args,
        lambda n: ctx.client.request("DELETE", f"/networks/{q(n)}").read(),
        skip=lambda err: bool(opts.force) and "not found" in str(err).lower(),
    )


INSPECT = Command(
    "network inspect",
    "Display detailed information on one or more networks",
    usage="[OPTIONS] NETWORK [NETWORK...]",
    flags=[
        Flag("format", "f", STR, "", help="Format output using a custom template"),
        Flag("verbose", "v", help="Verbose output for diagnostics"),
    ],
    example="skiff network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' appnet",
    min_args=1,
    args_complete="network",
)


def inspect(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.system import print_inspect

    opts, args = INSPECT.parse(argv)
    return print_inspect(
        args,
        opts.format,
        lambda n: ctx.client.get_json(f"/networks/{q(n)}", {"verbose": opts.verbose or None}),
    )


CONNECT = Command(
    "network connect",
    "Connect a container to a network",
    usage="[OPTIONS] NETWORK CONTAINER",
    flags=[
        Flag(
            "alias", kind=LIST, metavar="strings", help="Add network-scoped alias for the container"
        ),
        Flag("driver-opt", kind=LIST, metavar="strings", help="driver options for the network"),
        Flag("ip", kind=STR, default="", help="IPv4 address (e.g., 172.30.100.104)"),
        Flag("ip6", kind=STR, default="", help="IPv6 address (e.g., 2001:db8::33)"),
        Flag("link", kind=LIST, metavar="list", help="Add link to another container"),
        Flag(
            "link-local-ip",
            kind=LIST,
            metavar="strings",
            help="Add a link-local address for the container",
        ),
    ],
    example="skiff network connect --alias db appnet web",
    min_args=2,
    max_args=2,
    args_complete="network",
)


def connect(ctx: Context, argv: list[str]) -> int:
    opts, args = CONNECT.parse(argv)
    endpoint: dict[str, Any] = {}
    ipam = {k: v for k, v in (("IPv4Address", opts.ip), ("IPv6Address", opts.ip6)) if v}
    if opts.link_local_ip:
        ipam["LinkLocalIPs"] = opts.link_local_ip
    if ipam:
        endpoint["IPAMConfig"] = ipam
    if opts.alias:
        endpoint["Aliases"] = opts.alias
    if opts.link:
        endpoint["Links"] = opts.link
    if opts.driver_opt:
        endpoint["DriverOpts"] = parse_kv(opts.driver_opt)
    ctx.client.request(
        "POST",
        f"/networks/{q(args[0])}/connect",
        body={"Container": args[1], "EndpointConfig": endpoint},
    ).read()
    return 0


DISCONNECT = Command(
    "network disconnect",
    "Disconnect a container from a network",
    usage="[OPTIONS] NETWORK CONTAINER",
    flags=[Flag("force", "f", help="Force the container to disconnect from a network")],
    example="skiff network disconnect appnet web",
    min_args=2,
    max_args=2,
    args_complete="network",
)


def disconnect(ctx: Context, argv: list[str]) -> int:
    opts, args = DISCONNECT.parse(argv)
    ctx.client.request(
        "POST",
        f"/networks/{q(args[0])}/disconnect",
        body={"Container": args[1], "Force": bool(opts.force)},
    ).read()
    return 0


PRUNE = prune_command("network prune", "Remove all unused networks", "skiff network prune -f")


def prune(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.prune import confirmed, print_deleted

    opts, _ = PRUNE.parse(argv)
    if not confirmed(
        opts,
        "WARNING! This will remove all custom networks not used by at least one container.",
    ):
        return 0
    doc = ctx.client.post_json("/networks/prune", {"filters": parse_filters(opts.filter)}) or {}
    print_deleted("Deleted Networks:", doc.get("NetworksDeleted"), blank_line=False)
    return 0
