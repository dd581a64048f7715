"""Volume verbs: volume create, inspect, ls, rm, prune."""

from __future__ import annotations

import sys
from typing import Any

from skiff.cli.flags import LIST, STR, Command, Flag, parse_filters, parse_kv, prune_command
from skiff.cli.main import Context, ExitStatus, for_each
from skiff.client.api import q

LS = Command(
    "volume ls",
    "List volumes",
    flags=[
        Flag(
            "filter",
            "f",
            LIST,
            metavar="filter",
            help="Provide filter values (e.g. 'dangling=true')",
        ),
        Flag("format", kind=STR, default="", help="Format output using a custom template"),
        Flag("quiet", "q", help="Only display volume names"),
    ],
    example="skiff volume ls -q",
    max_args=0,
    aliases=("skiff volume list",),
)

HEADERS = {
    "Name": "VOLUME NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS",
    "Links": "LINKS",
    "Size": "SIZE",
    "CreatedAt": "CREATED AT",
}


class VolumeRow:
    def __init__(self, v: dict[str, Any]) -> None:
        self.v = v
        self.Name = str(v.get("Name", ""))
        self.Driver = str(v.get("Driver", ""))
        self.Scope = str(v.get("Scope", ""))
        self.Mountpoint = str(v.get("Mountpoint", ""))
        self.CreatedAt = str(v.get("CreatedAt", ""))
        self.Labels = ",".join(f"{k}={val}" for k, val in sorted((v.get("Labels") or {}).items()))
        usage = v.get("UsageData") or {}
        self.Links = "N/A" if usage.get("RefCount", -1) == -1 else str(usage["RefCount"])
        if usage.get("Size", -1) == -1:
            self.Size = "N/A"
        else:
            from skiff.cli.output import human_size

            self.Size = human_size(usage["Size"], 3)

    def Label(self, name: str) -> str:
        return str((self.v.get("Labels") or {}).get(name, ""))

    def to_json(self) -> dict[str, str]:
        keys = (
            "Availability",
            "Driver",
            "Group",
            "Labels",
            "Links",
            "Mountpoint",
            "Name",
            "Scope",
            "Size",
            "Status",
        )
        return {k: getattr(self, k, "N/A" if k in ("Availability", "Status") else "") for k in keys}


def ls(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.output import render

    opts, _ = LS.parse(argv)
    doc = ctx.client.get_json("/volumes", {"filters": parse_filters(opts.filter)}) or {}
    for w in doc.get("Warnings") or []:
        sys.stderr.write(f"WARNING: {w}\n")
    rows = [VolumeRow(v) for v in sorted(doc.get("Volumes") or [], key=lambda v: v.get("Name", ""))]
    render(
        opts.format,
        rows,
        HEADERS,
        "table {{.Driver}}\t{{.Name}}",
        quiet_field="Name" if opts.quiet else None,
    )
    return 0


CREATE = Command(
    "volume create",
    "Create a volume",
    usage="[OPTIONS] [VOLUME]",
    flags=[
        Flag("driver", "d", STR, "local", help="Specify volume driver name"),
        Flag("label", kind=LIST, metavar="list", help="Set metadata for a volume"),
        Flag("name", kind=STR, default="", help="Specify volume name", hidden=True),
        Flag("opt", "o", LIST, metavar="map", help="Set driver specific options"),
    ],
    example="skiff volume create data\nskiff volume create -o type=tmpfs -o device=tmpfs scratch",
    max_args=1,
)


def create(ctx: Context, argv: list[str]) -> int:
    opts, args = CREATE.parse(argv)
    name = args[0] if args else opts.name
    if args and opts.name and opts.name != args[0]:
        raise ExitStatus(
            1,
            "skiff: conflicting options: either specify --name or provide positional arg, not both",
        )
    body = {
        "Name": name,
        "Driver": opts.driver,
        "DriverOpts": parse_kv(opts.opt),
        "Labels": parse_kv(opts.label),
    }
    doc = ctx.client.post_json("/volumes/create", body=body) or {}
    print(doc.get("Name", name))
    return 0


RM = Command(
    "volume rm",
    "Remove one or more volumes",
    usage="[OPTIONS] VOLUME [VOLUME...]",
    flags=[Flag("force", "f", help="Force the removal of one or more volumes")],
    example="skiff volume rm data",
    min_args=1,
    aliases=("skiff volume remove",),
    args_complete="volume",
)


def rm(ctx: Context, argv: list[str]) -> int:
    opts, args = RM.parse(argv)
    params = {"force": opts.force or None}
    return for_each(args, lambda n: ctx.client.request("DELETE", f"/volumes/{q(n)}", params).read())


INSPECT = Command(
    "volume inspect",
    "Display detailed information on one or more volumes",
    usage="[OPTIONS] VOLUME [VOLUME...]",
    flags=[Flag("format", "f", STR, "", help="Format output using a custom template")],
    example="skiff volume inspect -f '{{.Mountpoint}}' data",
    min_args=1,
    args_complete="volume",
)


def inspect(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.system import print_inspect

    opts, args = INSPECT.parse(argv)
    return print_inspect(args, opts.format, lambda n: ctx.client.get_json(f"/volumes/{q(n)}"))


PRUNE = prune_command(
    "volume prune",
    "Remove unused local volumes",
    "skiff volume prune -af",
    filter_example="label=<label>",
    all_help="Remove all unused volumes, not just anonymous ones",
)


def prune(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.prune import confirmed, print_deleted, print_reclaimed

    opts, _ = PRUNE.parse(argv)
    if not confirmed(
        opts,
        "WARNING! This will remove anonymous local volumes not used by at least one container.",
    ):
        return 0
    filters = parse_filters(opts.filter) or {}
    if opts.all:
        filters["all"] = {"true": True}
    doc = ctx.client.post_json("/volumes/prune", {"filters": filters or None}) or {}
    print_deleted("Deleted Volumes:", doc.get("VolumesDeleted"))
    print_reclaimed(doc.get("SpaceReclaimed", 0))
    return 0
