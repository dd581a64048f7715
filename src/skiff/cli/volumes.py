"""Volume verbs: volume create, inspect, ls, rm, prune."""

from __future__ import annotations

import sys
from typing import Any

from skiff.cli.flags import LIST, STR, Command, Flag
from skiff.cli.main import Context, ExitStatus
from skiff.client.api import q
from skiff.errors import SkiffError

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
    from skiff.cli.containers import _filters
    from skiff.cli.output import render

    opts, _ = LS.parse(argv)
    doc = ctx.client.get_json("/volumes", {"filters": _filters(opts.filter)}) or {}
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


def _kv(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        out[k] = v
    return out


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
        "DriverOpts": _kv(opts.opt),
        "Labels": _kv(opts.label),
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
    failed = []
    for name in args:
        try:
            ctx.client.request(
                "DELETE", f"/volumes/{q(name)}", {"force": opts.force or None}
            ).read()
        except SkiffError as err:
            failed.append(str(err))
            continue
        print(name)
    if failed:
        sys.stdout.flush()
        raise ExitStatus(1, "\n".join(failed))
    return 0


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


PRUNE = Command(
    "volume prune",
    "Remove unused local volumes",
    flags=[
        Flag("all", "a", help="Remove all unused volumes, not just anonymous ones"),
        Flag(
            "filter",
            kind=LIST,
            metavar="filter",
            help="Provide filter values (e.g. 'label=<label>')",
        ),
        Flag("force", "f", help="Do not prompt for confirmation"),
    ],
    example="skiff volume prune -af",
    max_args=0,
)


def prune(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.containers import _filters, confirm
    from skiff.cli.output import human_size

    opts, _ = PRUNE.parse(argv)
    if not opts.force and not confirm(
        "WARNING! This will remove anonymous local volumes not used by at least one container.\n"
        "Are you sure you want to continue?"
    ):
        return 0
    filters = _filters(opts.filter) or {}
    if opts.all:
        filters["all"] = {"true": True}
    doc = ctx.client.post_json("/volumes/prune", {"filters": filters or None}) or {}
    deleted = doc.get("VolumesDeleted") or []
    if deleted:
        print("Deleted Volumes:")
        for v in deleted:
            print(v)
        print()
    print(f"Total reclaimed space: {human_size(doc.get('SpaceReclaimed', 0))}")
    return 0
