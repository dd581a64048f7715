"""System verbs: version, info, inspect (any object), events, system df/prune, login/logout."""

from __future__ import annotations

import os
import sys

from skiff.cli.flags import LIST, STR, Command, Flag, parse_filters, prune_command
from skiff.cli.main import Context, ExitStatus
from skiff.client.api import MAX_API_VERSION, q
from skiff.errors import NotFound, SkiffError, Unavailable

TYPE_CHECKING = False  # `typing` and `json` stay off the start-up path of `skiff version`
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

CLIENT_VERSION = "0.1.0"


def _go_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )


# -- version ----------------------------------------------------------------------------------

VERSION = Command(
    "version",
    "Show the skiff version information",
    flags=[Flag("format", "f", STR, "", help="Format output using a custom template")],
    example="skiff version --format '{{.Server.Version}}'",
    max_args=0,
)

VERSION_TEMPLATE = """Client:
 Version:\t{{.Client.Version}}
 API version:\t{{.Client.ApiVersion}}{{if ne .Client.ApiVersion .Client.DefaultAPIVersion}} (downgraded from {{.Client.DefaultAPIVersion}}){{end}}
 Python version:\t{{.Client.PythonVersion}}
 OS/Arch:\t{{.Client.Os}}/{{.Client.Arch}}
{{- if .ServerOK}}

Server:
{{- range $c := .Server.Components}}
 {{$c.Name}}:
  Version:\t{{$c.Version}}
{{- range $k, $v := $c.Details}}
  {{$k}}:\t{{$v}}
{{- end}}
{{- end}}
{{- end}}
"""


def version(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.output import tabwrite

    opts, _ = VERSION.parse(argv)
    client = ctx.client
    server: dict[str, Any] | None = None
    error: SkiffError | None = None
    try:
        server = client.get_json("/version")
    except SkiffError as err:
        error = err
    api = client._version or MAX_API_VERSION
    data: dict[str, Any] = {
        "Client": {
            "Platform": {"Name": "skiff"},
            "Version": CLIENT_VERSION,
            "ApiVersion": api,
            "APIVersion": api,
            "DefaultAPIVersion": MAX_API_VERSION,
            "PythonVersion": "{}.{}.{}".format(*sys.version_info[:3]),
            "Os": sys.platform if sys.platform != "linux" else "linux",
            "Arch": _go_arch(),
            "Context": "default",
        },
        "Server": server,
        "ServerOK": server is not None,
    }
    if server is not None:
        # docker's templates see Go field names: .Server.APIVersion
        server.setdefault("APIVersion", server.get("ApiVersion", ""))
    if server is not None and not server.get("Components"):
        server["Components"] = [
            {
                "Name": "Engine",
                "Version": server.get("Version", ""),
                "Details": {
                    k: server.get(k, "")
                    for k in ("ApiVersion", "MinAPIVersion", "GitCommit", "GoVersion", "Os", "Arch")
                },
            }
        ]
    if server is not None:
        for comp in server.get("Components") or []:
            if comp.get("Name") == "Engine":
                det = comp.setdefault("Details", {})
                comp["Details"] = {_engine_key(k): v for k, v in det.items()}
    if opts.format:
        from skiff.cli.output import render

        render(opts.format, [data], {}, "")
    else:
        text = _version_text(data)
        sys.stdout.write(tabwrite(text, minwidth=20, padding=1))
    if error is not None:
        sys.stdout.flush()
        raise ExitStatus(1, str(error))
    return 0


def _version_text(data: dict[str, Any]) -> str:
    """The default `version` output (VERSION_TEMPLATE) built directly: no template engine on
    this start-up path. A unit test checks both give the same text."""
    c = data["Client"]
    api = c["ApiVersion"] + (
        f" (downgraded from {c['DefaultAPIVersion']})"
        if c["ApiVersion"] != c["DefaultAPIVersion"]
        else ""
    )
    lines = [
        "Client:",
        f" Version:\t{c['Version']}",
        f" API version:\t{api}",
        f" Python version:\t{c['PythonVersion']}",
        f" OS/Arch:\t{c['Os']}/{c['Arch']}",
    ]
    if data["ServerOK"]:
        lines += ["", "Server:"]
        for comp in data["Server"].get("Components") or []:
            lines += [f" {comp.get('Name', '')}:", f"  Version:\t{comp.get('Version', '')}"]
            details = comp.get("Details") or {}
            lines += [f"  {k}:\t{_plain(details[k])}" for k in sorted(details)]
    return "\n".join(lines) + "\n"


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _engine_key(key: str) -> str:
    return {
        "ApiVersion": "API version",
        "MinAPIVersion": "Minimum API version",
        "GitCommit": "Git commit",
        "GoVersion": "Go version",
        "BuildTime": "Built",
        "KernelVersion": "Kernel version",
        "Experimental": "Experimental",
        "Os": "OS",
        "Arch": "Arch",
    }.get(key, key)


# -- info -------------------------------------------------------------------------------------

INFO = Command(
    "info",
    "Display system-wide information",
    flags=[Flag("format", "f", STR, "", help="Format output using a custom template")],
    example="skiff info --format '{{.ServerVersion}}'",
    max_args=0,
)


def info(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.output import bytes_size

    opts, _ = INFO.parse(argv)
    try:
        doc = ctx.client.get_json("/info")
    except Unavailable as err:
        if opts.format:
            raise
        print("Client:\n Version:    " + CLIENT_VERSION + "\n Context:    default\n")
        raise ExitStatus(1, f"Server:\nERROR: {err}")
    doc["ClientInfo"] = {"Version": CLIENT_VERSION, "Context": "default", "Debug": False}
    if opts.format:
        from skiff.cli.output import render

        render(opts.format, [doc], {}, "")
        return 0
    lines = [
        "Client:",
        f" Version:    {CLIENT_VERSION}",
        " Context:    default",
        " Debug Mode: false",
        "",
        "Server:",
        f" Containers: {doc.get('Containers', 0)}",
        f"  Running: {doc.get('ContainersRunning', 0)}",
        f"  Paused: {doc.get('ContainersPaused', 0)}",
        f"  Stopped: {doc.get('ContainersStopped', 0)}",
        f" Images: {doc.get('Images', 0)}",
        f" Server Version: {doc.get('ServerVersion', '')}",
        f" Storage Driver: {doc.get('Driver', '')}",
    ]
    for pair in doc.get("DriverStatus") or []:
        lines.append(f"  {pair[0]}: {pair[1]}")
    lines += [
        f" Logging Driver: {doc.get('LoggingDriver', '')}",
        f" Cgroup Driver: {doc.get('CgroupDriver', '')}",
        f" Cgroup Version: {doc.get('CgroupVersion', '')}",
        f" Default Runtime: {doc.get('DefaultRuntime', '')}",
        " Security Options:",
    ]
    for opt in doc.get("SecurityOptions") or []:
        lines.append(f"  {opt.split(',')[0].removeprefix('name=')}")
    lines += [
        f" Kernel Version: {doc.get('KernelVersion', '')}",
        f" Operating System: {doc.get('OperatingSystem', '')}",
        f" OSType: {doc.get('OSType', '')}",
        f" Architecture: {doc.get('Architecture', '')}",
        f" CPUs: {doc.get('NCPU', 0)}",
        f" Total Memory: {bytes_size(doc.get('MemTotal', 0))}",
        f" Name: {doc.get('Name', '')}",
        f" ID: {doc.get('ID', '')}",
        f" Docker Root Dir: {doc.get('DockerRootDir', '')}",
        f" Debug Mode: {str(bool(doc.get('Debug'))).lower()}",
    ]
    for w in doc.get("Warnings") or []:
        lines.append(w)
    print("\n".join(lines))
    return 0


# -- inspect ----------------------------------------------------------------------------------

INSPECT = Command(
    "inspect",
    "Return low-level information on skiff objects",
    usage="[OPTIONS] NAME|ID [NAME|ID...]",
    flags=[
        Flag("format", "f", STR, "", help="Format output using a custom template"),
        Flag("size", "s", help="Display total file sizes if the type is container"),
        Flag(
            "type",
            kind=STR,
            default="",
            help="Return JSON for specified type (container, image, network, volume)",
        ),
    ],
    example="skiff inspect --format '{{.State.Status}}' web\nskiff inspect busybox",
    min_args=1,
    args_complete="container",
)


def _go_json_indent(value: Any) -> str:
    import json

    text = json.dumps(value, indent=4, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def print_inspect(names: list[str], fmt: str, fetch: Callable[[str], Any]) -> int:
    """docker's inspect output: an indented JSON array, or one template rendering per object."""
    from skiff.cli.gotemplate import Template

    results: list[Any] = []
    errors: list[str] = []
    for name in names:
        try:
            results.append(fetch(name))
        except NotFound as err:
            errors.append(str(err).replace("Error response from daemon: ", "Error: ", 1))
    if fmt:
        if fmt == "json":
            fmt = "{{json .}}"
        tmpl = Template(fmt.replace("\\n", "\n").replace("\\t", "\t"))
        for obj in results:
            sys.stdout.write(tmpl.render(obj) + "\n")
    else:
        sys.stdout.write(_go_json_indent(results) + "\n")
    if errors:
        sys.stdout.flush()
        raise ExitStatus(1, "\n".join(errors))
    return 0


def inspect(ctx: Context, argv: list[str]) -> int:
    opts, args = INSPECT.parse(argv)
    client = ctx.client
    kinds = {
        "container": lambda n: client.get_json(
            f"/containers/{q(n)}/json", {"size": opts.size or None}
        ),
        "image": lambda n: client.get_json(f"/images/{q(n)}/json"),
        "network": lambda n: client.get_json(f"/networks/{q(n)}"),
        "volume": lambda n: client.get_json(f"/volumes/{q(n)}"),
    }
    if opts.type:
        if opts.type not in kinds:
            raise ExitStatus(1, f'skiff: "{opts.type}" is not a valid value for --type')
        order = [opts.type]
    else:
        order = ["container", "image", "network", "volume"]

    def fetch(name: str) -> Any:
        for kind in order:
            try:
                return kinds[kind](name)
            except NotFound:
                continue
        what = opts.type or "object"
        raise NotFound(f"Error response from daemon: No such {what}: {name}")

    return print_inspect(args, opts.format, fetch)


# -- events -----------------------------------------------------------------------------------

EVENTS = Command(
    "events",
    "Get real time events from the server",
    flags=[
        Flag(
            "filter", "f", LIST, metavar="filter", help="Filter output based on conditions provided"
        ),
        Flag("format", kind=STR, default="", help="Format output using a custom template"),
        Flag("since", kind=STR, default="", help="Show all events created since timestamp"),
        Flag("until", kind=STR, default="", help="Stream events until this timestamp"),
    ],
    example="skiff events --since 10m --until 0s --filter type=container",
    max_args=0,
)


def events(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.containers import _time_param
    from skiff.cli.gotemplate import Template
    from skiff.client.api import iter_json_messages

    opts, _ = EVENTS.parse(argv)
    params = {
        "since": _time_param(opts.since),
        "until": _time_param(opts.until),
        "filters": parse_filters(opts.filter),
    }
    resp = ctx.client.request("GET", "/events", params)
    tmpl = Template(opts.format if opts.format != "json" else "{{json .}}") if opts.format else None
    for ev in iter_json_messages(resp):
        if tmpl is not None:
            sys.stdout.write(tmpl.render(ev) + "\n")
        else:
            sys.stdout.write(format_event(ev) + "\n")
        sys.stdout.flush()
    return 0


def format_event(ev: dict[str, Any]) -> str:
    """docker's default event line: `<time> <type> <action> <id> (k=v, …)`."""
    import time as _time

    nano = ev.get("timeNano") or int(ev.get("time", 0)) * 10**9
    secs, frac = divmod(int(nano), 10**9)
    t = _time.localtime(secs)
    off = t.tm_gmtoff or 0
    tz = (
        "Z"
        if off == 0
        else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    )
    stamp = _time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{frac:09d}" + tz
    actor = ev.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    line = f"{stamp} {ev.get('Type', '')} {ev.get('Action', '')} {actor.get('ID', '')}"
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line


# -- system df / prune ------------------------------------------------------------------------

DF = Command(
    "system df",
    "Show skiff disk usage",
    flags=[
        Flag("format", kind=STR, default="", help="Format output using a custom template"),
        Flag("verbose", "v", help="Show detailed information on space usage"),
    ],
    example="skiff system df",
    max_args=0,
)


class _DfRow:
    def __init__(self, kind: str, total: int, active: int, size: int, reclaimable: int) -> None:
        from skiff.cli.output import human_size

        self.Type = kind
        self.TotalCount = str(total)
        self.Active = str(active)
        self.Size = human_size(size)
        pct = f" ({reclaimable * 100 // size}%)" if size else ""
        self.Reclaimable = human_size(reclaimable) + pct

    def to_json(self) -> dict[str, str]:
        return {
            k: getattr(self, k) for k in ("Active", "Reclaimable", "Size", "TotalCount", "Type")
        }


def df(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.output import render

    opts, _ = DF.parse(argv)
    doc = ctx.client.get_json("/system/df")
    if opts.verbose:
        return _df_verbose(doc)
    images = doc.get("Images") or []
    containers = doc.get("Containers") or []
    volumes = doc.get("Volumes") or []
    cache = doc.get("BuildCache") or []
    img_size = doc.get("LayersSize") or sum(i.get("Size", 0) for i in images)
    img_active = sum(1 for i in images if (i.get("Containers") or 0) > 0)
    img_used = sum(
        i.get("Size", 0) - max(i.get("SharedSize", 0), 0)
        for i in images
        if (i.get("Containers") or 0) > 0
    )
    c_size = sum(c.get("SizeRw", 0) or 0 for c in containers)
    c_active = sum(1 for c in containers if c.get("State") == "running")
    c_reclaim = sum(c.get("SizeRw", 0) or 0 for c in containers if c.get("State") != "running")
    v_size = sum(
        ((v.get("UsageData") or {}).get("Size", 0) or 0)
        for v in volumes
        if (v.get("UsageData") or {}).get("Size", 0) > 0
    )
    v_active = sum(1 for v in volumes if ((v.get("UsageData") or {}).get("RefCount", 0) or 0) > 0)
    v_reclaim = sum(
        ((v.get("UsageData") or {}).get("Size", 0) or 0)
        for v in volumes
        if ((v.get("UsageData") or {}).get("RefCount", 0) or 0) == 0
        and (v.get("UsageData") or {}).get("Size", 0) > 0
    )
    b_size = sum(b.get("Size", 0) for b in cache if not b.get("Shared"))
    b_active = sum(1 for b in cache if b.get("InUse"))
    b_reclaim = sum(b.get("Size", 0) for b in cache if not b.get("InUse") and not b.get("Shared"))
    rows = [
        _DfRow("Images", len(images), img_active, img_size, max(img_size - img_used, 0)),
        _DfRow("Containers", len(containers), c_active, c_size, c_reclaim),
        _DfRow("Local Volumes", len(volumes), v_active, v_size, v_reclaim),
        _DfRow("Build Cache", len(cache), b_active, b_size, b_reclaim),
    ]
    headers = {
        "Type": "TYPE",
        "TotalCount": "TOTAL",
        "Active": "ACTIVE",
        "Size": "SIZE",
        "Reclaimable": "RECLAIMABLE",
    }
    render(
        opts.format,
        rows,
        headers,
        "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
    )
    return 0


def _df_verbose(doc: dict[str, Any]) -> int:
    """docker system df -v: one table per kind of object."""
    from skiff.cli.containers import PS_HEADERS, ContainerRow
    from skiff.cli.images import IMAGE_HEADERS, ImageRow, split_tagged
    from skiff.cli.output import human_size, render
    from skiff.cli.volumes import HEADERS as VOLUME_HEADERS
    from skiff.cli.volumes import VolumeRow

    out = sys.stdout
    out.write("Images space usage:\n\n")
    rows = []
    for img in doc.get("Images") or []:
        tags = [t for t in img.get("RepoTags") or [] if t != "<none>:<none>"]
        repo, tag = split_tagged(tags[0]) if tags else ("<none>", "<none>")
        rows.append(ImageRow(img, repo, tag, "<none>", True))
    render(
        "",
        rows,
        IMAGE_HEADERS,
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
    )
    out.write("\nContainers space usage:\n\n")
    crow = [
        ContainerRow({k: v for k, v in c.items() if k != "SizeRootFs"}, True)
        for c in doc.get("Containers") or []
    ]
    render(
        "",
        crow,
        PS_HEADERS,
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
    )
    out.write("\nLocal Volumes space usage:\n\n")
    vrows = [VolumeRow(v) for v in doc.get("Volumes") or []]
    render("", vrows, VOLUME_HEADERS, "table {{.Name}}\t{{.Links}}\t{{.Size}}")
    cache = doc.get("BuildCache") or []
    out.write(f"\nBuild cache usage: {human_size(sum(b.get('Size', 0) for b in cache))}\n\n")
    out.write(_cache_table(cache))
    return 0


def _cache_table(cache: list[dict[str, Any]]) -> str:
    from skiff.cli.output import ago, human_size, parse_rfc3339, tabwrite

    lines = ["CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED"]
    for b in cache:
        created = ago(parse_rfc3339(b.get("CreatedAt", ""))) if b.get("CreatedAt") else ""
        used = ago(parse_rfc3339(b.get("LastUsedAt", ""))) if b.get("LastUsedAt") else ""
        lines.append(
            "\t".join(
                [
                    str(b.get("ID", ""))[:12],
                    str(b.get("Type", "")),
                    human_size(b.get("Size", 0)),
                    created,
                    used,
                    str(b.get("UsageCount", 0)),
                    str(bool(b.get("Shared"))).lower(),
                ]
            )
        )
    return tabwrite("\n".join(lines) + "\n")


SYSTEM_PRUNE = prune_command(
    "system prune",
    "Remove unused data",
    "skiff system prune -af",
    filter_example="label=<key>=<value>",
    all_help="Remove all unused images not just dangling ones",
    extra=(Flag("volumes", help="Prune anonymous volumes"),),
)


def prune(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.prune import confirmed, print_deleted, print_deleted_images, print_reclaimed

    opts, _ = SYSTEM_PRUNE.parse(argv)
    what = ["all stopped containers", "all networks not used by at least one container"]
    if opts.volumes:
        what.append("all anonymous volumes not used by at least one container")
    what.append(
        "all images without at least one container associated to them"
        if opts.all
        else "all dangling images"
    )
    if not confirmed(opts, "WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in what)):
        return 0
    client = ctx.client
    filters = parse_filters(opts.filter)
    reclaimed = 0
    doc = client.post_json("/containers/prune", {"filters": filters}) or {}
    print_deleted("Deleted Containers:", doc.get("ContainersDeleted"))
    reclaimed += doc.get("SpaceReclaimed", 0) or 0
    doc = client.post_json("/networks/prune", {"filters": filters}) or {}
    print_deleted("Deleted Networks:", doc.get("NetworksDeleted"))
    if opts.volumes:
        doc = client.post_json("/volumes/prune", {"filters": filters}) or {}
        print_deleted("Deleted Volumes:", doc.get("VolumesDeleted"))
        reclaimed += doc.get("SpaceReclaimed", 0) or 0
    img_filters = dict(filters or {})
    img_filters["dangling"] = {"false" if opts.all else "true": True}
    doc = client.post_json("/images/prune", {"filters": img_filters}) or {}
    print_deleted_images(doc.get("ImagesDeleted"))
    reclaimed += doc.get("SpaceReclaimed", 0) or 0
    print_reclaimed(reclaimed)
    return 0


# -- login / logout ---------------------------------------------------------------------------

LOGIN = Command(
    "login",
    "Log in to a registry",
    usage="[OPTIONS] [SERVER]",
    flags=[
        Flag("password", "p", STR, "", help="Password"),
        Flag("password-stdin", help="Take the password from stdin"),
        Flag("username", "u", STR, "", help="Username"),
    ],
    example="echo $TOKEN | skiff login -u me --password-stdin localhost:5000",
    max_args=1,
)

DEFAULT_REGISTRY = "https://index.docker.io/v1/"


def config_path(ctx: Context) -> str:
    return os.path.join(ctx.config_dir, "config.json")


def load_config(ctx: Context) -> dict[str, Any]:
    try:
        import json

        with open(config_path(ctx), encoding="utf-8") as fh:
            doc = json.load(fh)
            return doc if isinstance(doc, dict) else {}
    except FileNotFoundError:
        return {}
    except ValueError as err:
        raise ExitStatus(1, f"skiff: {config_path(ctx)}: invalid JSON: {err}")


def save_config(ctx: Context, doc: dict[str, Any]) -> None:
    path = config_path(ctx)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    import json

    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent="\t")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def registry_key(server: str) -> str:
    if not server or server in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return DEFAULT_REGISTRY
    return server.removeprefix("https://").removeprefix("http://").rstrip("/")


def auth_header(ctx: Context, image: str) -> str | None:
    """X-Registry-Auth for pulling/pushing `image`, from the saved login of its registry."""
    import base64

    first = image.split("/", 1)[0]
    server = (
        first if "/" in image and ("." in first or ":" in first or first == "localhost") else ""
    )
    entry = (load_config(ctx).get("auths") or {}).get(registry_key(server))
    if not entry or not entry.get("auth"):
        return None
    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    import json

    doc = {"username": user, "password": password, "serveraddress": registry_key(server)}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


def login(ctx: Context, argv: list[str]) -> int:
    import base64

    opts, args = LOGIN.parse(argv)
    server = args[0] if args else ""
    user, password = opts.username, opts.password
    if opts.password_stdin:
        if opts.password:
            raise ExitStatus(1, "skiff: --password and --password-stdin are mutually exclusive")
        if not user:
            raise ExitStatus(1, "skiff: Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    if not user:
        sys.stdout.write("Username: ")
        sys.stdout.flush()
        user = sys.stdin.readline().strip()
    if not password:
        import getpass

        password = getpass.getpass("Password: ")
    if not user or not password:
        raise ExitStatus(1, "skiff: Error: Non-null Username and Password Required")
    key = registry_key(server)
    doc = (
        ctx.client.post_json(
            "/auth", body={"username": user, "password": password, "serveraddress": key}
        )
        or {}
    )
    cfg = load_config(ctx)
    cfg.setdefault("auths", {})[key] = {
        "auth": base64.b64encode(f"{user}:{password}".encode()).decode()
    }
    save_config(ctx, cfg)
    print(doc.get("Status") or "Login Succeeded")
    return 0


LOGOUT = Command(
    "logout",
    "Log out from a registry",
    usage="[SERVER]",
    example="skiff logout localhost:5000",
    max_args=1,
)


def logout(ctx: Context, argv: list[str]) -> int:
    _, args = LOGOUT.parse(argv)
    key = registry_key(args[0] if args else "")
    cfg = load_config(ctx)
    auths = cfg.get("auths") or {}
    if key not in auths:
        print(f"Not logged in to {key}")
        return 0
    print(f"Removing login credentials for {key}")
    del auths[key]
    save_config(ctx, cfg)
    return 0
