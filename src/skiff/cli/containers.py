"""Container verbs: run, create, start, stop, ps, logs, exec, attach, cp, … (docker's flags)."""

from __future__ import annotations

import os
import sys
import time

from skiff.cli.flags import (
    BOOL,
    INT,
    LIST,
    STR,
    Command,
    Flag,
    FlagError,
    parse_filters,
    prune_command,
)
from skiff.cli.main import Context, ExitStatus, for_each
from skiff.client.api import loads, q
from skiff.errors import NotFound, SkiffError

TYPE_CHECKING = False  # no `typing` at run time: start-up cost
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from skiff.client.api import Client

FORMAT = Flag(
    "format",
    kind=STR,
    default="",
    metavar="string",
    help="Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')",
)


# -- ps ---------------------------------------------------------------------------------------

PS = Command(
    "ps",
    "List containers",
    flags=[
        Flag("all", "a", help="Show all containers (default shows just running)"),
        Flag(
            "filter", "f", LIST, metavar="filter", help="Filter output based on conditions provided"
        ),
        FORMAT,
        Flag(
            "last",
            "n",
            INT,
            -1,
            metavar="int",
            help="Show n last created containers (includes all states)",
        ),
        Flag("latest", "l", help="Show the latest created container (includes all states)"),
        Flag("no-trunc", help="Don't truncate output"),
        Flag("quiet", "q", help="Only display container IDs"),
        Flag("size", "s", help="Display total file sizes"),
    ],
    example="skiff ps -a --format '{{.ID}} {{.Names}} {{.Status}}'",
    max_args=0,
    aliases=("skiff container ls", "skiff container list", "skiff container ps"),
)

PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "LocalVolumes": "LOCAL VOLUMES",
    "Label": "LABEL",
}


def displayable_ports(ports: list[dict[str, Any]]) -> str:
    """docker's formatter.DisplayablePorts: ranges grouped, host mappings last."""

    def key(p: dict[str, Any]) -> tuple[Any, ...]:
        return (p.get("PrivatePort", 0), p.get("IP", ""), p.get("PublicPort", 0), p.get("Type", ""))

    groups: dict[str, list[int]] = {}
    order: list[str] = []
    result: list[str] = []
    host_maps: list[str] = []

    def form(port_key: str, first: int, last: int) -> str:
        ip, _, typ = port_key.rpartition("/")
        group = str(first) if first == last else f"{first}-{last}"
        if ip:
            group = f"{ip}:{group}->{group}"
        return f"{group}/{typ}"

    for p in sorted(ports, key=key):
        current = p.get("PrivatePort", 0)
        port_key = p.get("Type", "tcp")
        ip = p.get("IP", "")
        if ip:
            public = p.get("PublicPort", 0)
            if public != current:
                host = f"[{ip}]" if ":" in ip else ip
                host_maps.append(f"{host}:{public}->{current}/{p.get('Type', 'tcp')}")
                continue
            port_key = f"{ip}/{port_key}"
        group = groups.get(port_key)
        if group is None:
            groups[port_key] = [current, current]
            order.append(port_key)
            continue
        if current == group[1] + 1:
            group[1] = current
            continue
        result.append(form(port_key, group[0], group[1]))
        groups[port_key] = [current, current]
    for port_key in order:
        g = groups[port_key]
        result.append(form(port_key, g[0], g[1]))
    return ", ".join(result + host_maps)


class ContainerRow:
    """One `ps` row; attribute names are docker's template fields."""

    def __init__(self, c: dict[str, Any], trunc: bool) -> None:
        self.c = c
        self.trunc = trunc

    @property
    def ID(self) -> str:
        ident = str(self.c["Id"])
        return ident[:12] if self.trunc else ident

    @property
    def Names(self) -> str:
        names = [n[1:] if n.startswith("/") else n for n in self.c.get("Names") or []]
        if self.trunc:
            names = [n for n in names if "/" not in n][:1] or names[:1]
        return ",".join(names)

    @property
    def Image(self) -> str:
        image = self.c.get("Image") or "<no image>"
        if self.trunc:
            if image.startswith("sha256:"):
                return image[7:19]
            if "@" in image:
                image = image.split("@", 1)[0]
        return image

    @property
    def Command(self) -> str:
        from skiff.cli.output import ellipsis

        cmd = self.c.get("Command") or ""
        if self.trunc:
            cmd = ellipsis(cmd, 20)
        from skiff.cli.output import go_quote

        return go_quote(cmd)

    @property
    def CreatedAt(self) -> str:
        from skiff.cli.output import go_time

        return go_time(self.c.get("Created", 0))

    @property
    def RunningFor(self) -> str:
        from skiff.cli.output import ago

        return ago(self.c.get("Created", 0))

    @property
    def Ports(self) -> str:
        return displayable_ports(self.c.get("Ports") or [])

    @property
    def State(self) -> str:
        return str(self.c.get("State", ""))

    @property
    def Status(self) -> str:
        return str(self.c.get("Status", ""))

    @property
    def Size(self) -> str:
        from skiff.cli.output import human_size

        rw, root = self.c.get("SizeRw", 0) or 0, self.c.get("SizeRootFs", 0) or 0
        if "SizeRw" not in self.c and "SizeRootFs" not in self.c:
            return "0B"
        text = human_size(rw, 3)
        return f"{text} (virtual {human_size(root, 3)})" if root > 0 else text

    @property
    def Labels(self) -> str:
        labels = self.c.get("Labels") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    def Label(self, name: str) -> str:
        return str((self.c.get("Labels") or {}).get(name, ""))

    @property
    def Mounts(self) -> str:
        from skiff.cli.output import ellipsis

        names = []
        for m in self.c.get("Mounts") or []:
            name = m.get("Name") or m.get("Source", "")
            if self.trunc and not m.get("Name"):
                name = ellipsis(name, 15)
            names.append(name)
        return ",".join(names)

    @property
    def Networks(self) -> str:
        nets = (self.c.get("NetworkSettings") or {}).get("Networks") or {}
        return ",".join(sorted(nets))

    @property
    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))

    def to_json(self) -> dict[str, Any]:
        keys = [
            "Command",
            "CreatedAt",
            "ID",
            "Image",
            "Labels",
            "LocalVolumes",
            "Mounts",
            "Names",
            "Networks",
            "Ports",
            "RunningFor",
            "Size",
            "State",
            "Status",
        ]
        doc: dict[str, Any] = {k: getattr(self, k) for k in keys}
        # docker 28 adds the image manifest's platform (API >= 1.48); null before
        doc["Platform"] = (self.c.get("ImageManifestDescriptor") or {}).get("platform")
        return dict(sorted(doc.items()))


def ps(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.output import render

    opts, _ = PS.parse(argv)
    # as docker: -n/-l send only a limit; the daemon includes stopped containers for it
    params: dict[str, Any] = {"all": opts.all or None}
    if opts.latest:
        params["limit"] = 1
    elif opts.last > 0:
        params["limit"] = opts.last
    if opts.size or ".Size" in opts.format or "json ." in opts.format or opts.format == "json":
        params["size"] = True
    filters = parse_filters(opts.filter)
    if filters:
        params["filters"] = filters
    containers = ctx.client.get_json("/containers/json", params)
    rows = [ContainerRow(c, not opts.no_trunc) for c in containers]
    table = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    if opts.size:
        table += "\t{{.Size}}"
    fmt = opts.format
    render(fmt, rows, PS_HEADERS, table, quiet_field="ID" if opts.quiet else None)
    return 0


# -- create / run -----------------------------------------------------------------------------


def _create_command(name: str, run: bool) -> Command:
    from skiff.cli.runopts import CREATE_FLAGS, RUN_ONLY_FLAGS

    flags = CREATE_FLAGS + (RUN_ONLY_FLAGS if run else [])
    return Command(
        name,
        "Create and run a new container from an image" if run else "Create a new container",
        usage="[OPTIONS] IMAGE [COMMAND] [ARG...]",
        flags=sorted(flags, key=lambda f: f.long),
        interspersed=False,
        min_args=1,
        example=(
            "skiff run --rm -it busybox sh\nskiff run -d --name web -p 8080:80 busybox httpd -f -p 80"
            if run
            else "skiff create --name box -it busybox sh"
        ),
        args_complete="image",
    )


def _normalize_image(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in last:
        return image
    return image + ":latest"


def _pull(ctx: Context, image: str, platform: str, quiet: bool, out: Any) -> None:
    from skiff.cli.images import pull_image

    pull_image(ctx, image, platform=platform, quiet=quiet, out=out, all_tags=False)


def create_container(ctx: Context, opts: Any, args: list[str], detach: bool, pull_out: Any) -> str:
    from skiff.cli.runopts import build_create_request

    params, body = build_create_request(opts, args, detach)
    image = args[0]
    client = ctx.client
    if opts.pull == "always":
        _pull(ctx, image, opts.platform, opts.quiet, pull_out)
    try:
        result = client.post_json("/containers/create", params, body)
    except NotFound as err:
        if opts.pull == "never" or (
            "No such image" not in str(err) and "no such image" not in str(err).lower()
        ):
            raise
        sys.stderr.write(f"Unable to find image '{_normalize_image(image)}' locally\n")
        sys.stderr.flush()
        _pull(ctx, image, opts.platform, opts.quiet, pull_out)
        result = client.post_json("/containers/create", params, body)
    for warning in result.get("Warnings") or []:
        sys.stderr.write(f"WARNING: {warning}\n")
    cid: str = result["Id"]
    if opts.cidfile:
        with open(opts.cidfile, "x", encoding="utf-8") as fh:
            fh.write(cid)
    return cid


def create(ctx: Context, argv: list[str]) -> int:
    cmd = _create_command("create", run=False)
    opts, args = cmd.parse(argv)
    try:
        cid = create_container(ctx, opts, args, detach=False, pull_out=sys.stderr)
    except SkiffError as err:
        raise ExitStatus(125, f"skiff: {err}")
    print(cid)
    return 0


def start_error_status(err: Exception) -> int:
    """docker's runStartContainerErr: 127 not found, 126 cannot invoke, else 125."""
    text = str(err)
    if any(
        s in text
        for s in (
            "executable file not found",
            "no such file or directory",
            "system cannot find the file specified",
        )
    ):
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return 125


class _Waiter:
    """POST /containers/{id}/wait in a thread, opened before start so no exit is missed."""

    def __init__(self, client: Client, cid: str, condition: str) -> None:
        import threading

        self.status: int | None = None
        self.error: str | None = None
        self.client = client
        self.cid = cid
        self.condition = condition
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        try:
            client = self.client
            sock = client.connect()
            from skiff.client.http import encode_request, read_response

            sock.sendall(
                encode_request(
                    "POST",
                    client.path(f"/containers/{q(self.cid)}/wait", {"condition": self.condition}),
                    client.host_header,
                    {"User-Agent": "skiff-cli"},
                    b"",
                )
            )
            self._ready.set()
            resp = read_response(sock)
            body = resp.read()
            if resp.status >= 400:
                from skiff.client.api import DaemonError

                self.error = str(DaemonError.from_response(resp.status, body))
                return
            doc = loads(body or b"{}")
            self.status = int(doc.get("StatusCode", 0))
            if (doc.get("Error") or {}).get("Message"):
                self.error = doc["Error"]["Message"]
        except Exception as err:
            self.error = str(err)
        finally:
            self._ready.set()

    def result(self, timeout: float | None = None) -> int:
        self._thread.join(timeout)
        if self.status is None:
            raise ExitStatus(
                125, f"skiff: waiting for container {self.cid[:12]}: {self.error or 'no result'}"
            )
        return self.status


def run(ctx: Context, argv: list[str]) -> int:
    from skiff.cli import streams

    cmd = _create_command("run", run=True)
    opts, args = cmd.parse(argv)
    detach = bool(opts.detach)
    detach_keys = streams.parse_detach_keys(opts.detach_keys or streams.DEFAULT_DETACH_KEYS)
    if opts.tty and opts.interactive and not os.isatty(0):
        raise ExitStatus(1, "skiff: the input device is not a TTY")
    client = ctx.client
    try:
        cid = create_container(ctx, opts, args, detach, pull_out=sys.stderr)
    except FlagError:
        raise
    except SkiffError as err:
        raise ExitStatus(125, f"skiff: {err}")
    if detach:
        try:
            client.request("POST", f"/containers/{q(cid)}/start").read()
        except SkiffError as err:
            raise ExitStatus(start_error_status(err), f"skiff: {err}")
        print(cid)
        return 0

    attach_stdin = bool(opts.interactive)
    sock = None
    rest = b""
    attach = opts.attach or ["stdout", "stderr"] + (["stdin"] if attach_stdin else [])
    attach_params = {
        "stream": True,
        "stdin": "stdin" in attach,
        "stdout": "stdout" in attach,
        "stderr": "stderr" in attach,
        "detachKeys": opts.detach_keys or None,
    }
    sock, rest, _ = client.hijack(f"/containers/{q(cid)}/attach", attach_params)
    waiter = _Waiter(client, cid, "removed" if opts.rm else "next-exit")
    try:
        client.request("POST", f"/containers/{q(cid)}/start").read()
    except SkiffError as err:
        sock.close()
        if opts.rm:
            try:
                client.delete(f"/containers/{q(cid)}", {"force": True})
            except SkiffError:
                pass
        raise ExitStatus(start_error_status(err), f"skiff: {err}")
    tty = bool(opts.tty)
    outcome = _interact(
        client,
        f"/containers/{q(cid)}",
        sock,
        rest,
        tty,
        "stdin" in attach,
        detach_keys,
        sig_proxy=bool(opts.sig_proxy) and not tty,
    )
    if outcome == "detached":
        return 0
    return waiter.result()


def _interact(
    client: Client,
    resource: str,
    sock: Any,
    rest: bytes,
    tty: bool,
    stdin: bool,
    detach_keys: bytes,
    sig_proxy: bool,
) -> str:
    from skiff.cli import streams

    def resize(rows: int, cols: int) -> None:
        client.request("POST", f"{resource}/resize", {"h": rows, "w": cols}).read()

    def kill(sig: int) -> None:
        client.request("POST", f"{resource}/kill", {"signal": sig}).read()

    is_term = tty and os.isatty(1)
    try:
        with (
            streams.raw_terminal(0, tty and stdin),
            streams.on_resize(resize, is_term),
            streams.proxy_signals(kill, sig_proxy and not resource.startswith("/exec")),
        ):
            return streams.pump(sock, rest, tty, stdin, detach_keys)
    finally:
        sock.close()


# -- start / stop / restart / kill / rm / pause / unpause / wait / rename ---------------------

START = Command(
    "start",
    "Start one or more stopped containers",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    flags=[
        Flag("attach", "a", help="Attach STDOUT/STDERR and forward signals"),
        Flag(
            "detach-keys",
            kind=STR,
            default="",
            help="Override the key sequence for detaching a container",
        ),
        Flag("interactive", "i", help="Attach container's STDIN"),
    ],
    example="skiff start web",
    min_args=1,
    args_complete="container",
)


def start(ctx: Context, argv: list[str]) -> int:
    from skiff.cli import streams

    opts, args = START.parse(argv)
    client = ctx.client
    if opts.attach or opts.interactive:
        if len(args) > 1:
            raise ExitstatusUsage("you cannot start and attach multiple containers at once")
        info = client.get_json(f"/containers/{q(args[0])}/json")
        cid, tty = info["Id"], bool(info["Config"].get("Tty"))
        detach_keys = streams.parse_detach_keys(opts.detach_keys or streams.DEFAULT_DETACH_KEYS)
        sock, rest, _ = client.hijack(
            f"/containers/{q(cid)}/attach",
            {"stream": True, "stdin": bool(opts.interactive), "stdout": True, "stderr": True},
        )
        waiter = _Waiter(client, cid, "next-exit")
        try:
            client.request("POST", f"/containers/{q(cid)}/start").read()
        except SkiffError:
            sock.close()
            raise
        outcome = _interact(
            client,
            f"/containers/{q(cid)}",
            sock,
            rest,
            tty,
            bool(opts.interactive),
            detach_keys,
            sig_proxy=not tty,
        )
        return 0 if outcome == "detached" else waiter.result()
    return for_each(args, lambda c: client.request("POST", f"/containers/{q(c)}/start").read())


class ExitstatusUsage(ExitStatus):
    def __init__(self, message: str) -> None:
        super().__init__(1, f"skiff: {message}")


STOP = Command(
    "stop",
    "Stop one or more running containers",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    flags=[
        Flag("signal", "s", STR, "", help="Signal to send to the container"),
        Flag("time", "t", INT, None, help="Seconds to wait before killing the container"),
    ],
    example="skiff stop -t 5 web",
    min_args=1,
    args_complete="container",
)


def stop(ctx: Context, argv: list[str]) -> int:
    opts, args = STOP.parse(argv)
    params = {"t": opts.time, "signal": opts.signal or None}
    return for_each(
        args, lambda c: ctx.client.request("POST", f"/containers/{q(c)}/stop", params).read()
    )


RESTART = Command(
    "restart",
    "Restart one or more containers",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    flags=STOP.flags,
    example="skiff restart web",
    min_args=1,
    args_complete="container",
)


def restart(ctx: Context, argv: list[str]) -> int:
    opts, args = RESTART.parse(argv)
    params = {"t": opts.time, "signal": opts.signal or None}
    return for_each(
        args, lambda c: ctx.client.request("POST", f"/containers/{q(c)}/restart", params).read()
    )


KILL = Command(
    "kill",
    "Kill one or more running containers",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    flags=[Flag("signal", "s", STR, "", help="Signal to send to the container")],
    example="skiff kill -s HUP web",
    min_args=1,
    args_complete="container",
)


def kill(ctx: Context, argv: list[str]) -> int:
    opts, args = KILL.parse(argv)
    params = {"signal": opts.signal or None}
    return for_each(
        args, lambda c: ctx.client.request("POST", f"/containers/{q(c)}/kill", params).read()
    )


RM = Command(
    "rm",
    "Remove one or more containers",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    flags=[
        Flag("force", "f", help="Force the removal of a running container (uses SIGKILL)"),
        Flag("link", "l", help="Remove the specified link"),
        Flag("volumes", "v", help="Remove anonymous volumes associated with the container"),
    ],
    example="skiff rm -f web",
    min_args=1,
    aliases=("skiff container rm", "skiff container remove"),
    args_complete="container",
)


def rm(ctx: Context, argv: list[str]) -> int:
    opts, args = RM.parse(argv)
    params = {"force": opts.force or None, "v": opts.volumes or None, "link": opts.link or None}
    return for_each(
        args, lambda c: ctx.client.request("DELETE", f"/containers/{q(c)}", params).read()
    )


def _simple(name: str, summary: str, path: str, example: str) -> Any:
    cmd = Command(
        name,
        summary,
        usage="CONTAINER [CONTAINER...]",
        example=example,
        min_args=1,
        args_complete="container",
    )

    def verb(ctx: Context, argv: list[str]) -> int:
        _, args = cmd.parse(argv)
        return for_each(
            args, lambda c: ctx.client.request("POST", f"/containers/{q(c)}/{path}").read()
        )

    verb.command = cmd  # type: ignore[attr-defined]
    return verb


pause = _simple(
    "pause", "Pause all processes within one or more containers", "pause", "skiff pause web"
)
unpause = _simple(
    "unpause", "Unpause all processes within one or more containers", "unpause", "skiff unpause web"
)

WAIT = Command(
    "wait",
    "Block until one or more containers stop, then print their exit codes",
    usage="CONTAINER [CONTAINER...]",
    example="skiff wait web",
    min_args=1,
    args_complete="container",
)


def wait(ctx: Context, argv: list[str]) -> int:
    _, args = WAIT.parse(argv)

    def wait_one(name: str) -> None:
        doc = ctx.client.post_json(f"/containers/{q(name)}/wait")
        print(doc.get("StatusCode", 0))

    return for_each(args, wait_one, echo=False)


RENAME = Command(
    "rename",
    "Rename a container",
    usage="CONTAINER NEW_NAME",
    example="skiff rename web web-old",
    min_args=2,
    max_args=2,
    args_complete="container",
)


def rename(ctx: Context, argv: list[str]) -> int:
    _, args = RENAME.parse(argv)
    if not args[1].strip():
        raise ExitStatus(1, "skiff: Error: neither old nor new names may be empty")
    ctx.client.request("POST", f"/containers/{q(args[0])}/rename", {"name": args[1]}).read()
    return 0


PRUNE = prune_command(
    "container prune", "Remove all stopped containers", "skiff container prune -f"
)


def prune(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.prune import confirmed, print_deleted, print_reclaimed

    opts, _ = PRUNE.parse(argv)
    if not confirmed(opts, "WARNING! This will remove all stopped containers."):
        return 0
    doc = ctx.client.post_json("/containers/prune", {"filters": parse_filters(opts.filter)}) or {}
    print_deleted("Deleted Containers:", doc.get("ContainersDeleted"))
    print_reclaimed(doc.get("SpaceReclaimed", 0))
    return 0


# -- logs -------------------------------------------------------------------------------------

LOGS = Command(
    "logs",
    "Fetch the logs of a container",
    usage="[OPTIONS] CONTAINER",
    flags=[
        Flag("details", help="Show extra details provided to logs"),
        Flag("follow", "f", help="Follow log output"),
        Flag(
            "since", kind=STR, default="", help="Show logs since timestamp or relative (e.g. 42m)"
        ),
        Flag("tail", "n", STR, "all", help="Number of lines to show from the end of the logs"),
        Flag("timestamps", "t", help="Show timestamps"),
        Flag(
            "until",
            kind=STR,
            default="",
            help="Show logs before a timestamp or relative (e.g. 42m)",
        ),
    ],
    example="skiff logs -f --tail 10 web",
    min_args=1,
    max_args=1,
    args_complete="container",
)


def _time_param(value: str) -> str | None:
    """docker's GetTimestamp: relative durations become a Unix time; RFC 3339 is converted."""
    if not value:
        return None
    from skiff.cli.output import parse_rfc3339
    from skiff.cli.runopts import parse_duration

    if value.replace(".", "", 1).isdigit():
        return value
    try:
        ns = parse_duration(value)
        return f"{time.time() - ns / 1e9:.9f}"
    except FlagError:
        pass
    ts = parse_rfc3339(value)
    if ts:
        return f"{ts:.9f}"
    raise FlagError(f'invalid value for "since"/"until": {value!r}')


def logs(ctx: Context, argv: list[str]) -> int:
    from skiff.client.api import demux_frames

    opts, args = LOGS.parse(argv)
    client = ctx.client
    info = client.get_json(f"/containers/{q(args[0])}/json")
    tty = bool((info.get("Config") or {}).get("Tty"))
    params = {
        "stdout": True,
        "stderr": True,
        "follow": opts.follow or None,
        "timestamps": opts.timestamps or None,
        "details": opts.details or None,
        "tail": opts.tail if opts.tail != "all" else None,
        "since": _time_param(opts.since),
        "until": _time_param(opts.until),
    }
    resp = client.request("GET", f"/containers/{q(info['Id'])}/logs", params)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    pending = b""
    for chunk in resp.iter_chunks():
        if tty:
            out.write(chunk)
            out.flush()
            continue
        frames, pending = demux_frames(pending + chunk)
        for stream, payload in frames:
            target = err if stream == 2 else out
            target.write(payload)
            target.flush()
    return 0


# -- exec / attach ----------------------------------------------------------------------------

EXEC = Command(
    "exec",
    "Execute a command in a running container",
    usage="[OPTIONS] CONTAINER COMMAND [ARG...]",
    flags=[
        Flag("detach", "d", help="Detached mode: run command in the background"),
        Flag(
            "detach-keys",
            kind=STR,
            default="",
            help="Override the key sequence for detaching a container",
        ),
        Flag("env", "e", LIST, metavar="list", help="Set environment variables"),
        Flag(
            "env-file",
            kind=LIST,
            metavar="list",
            help="Read in a file of environment variables",
            complete="file",
        ),
        Flag("interactive", "i", help="Keep STDIN open even if not attached"),
        Flag("privileged", help="Give extended privileges to the command"),
        Flag("tty", "t", help="Allocate a pseudo-TTY"),
        Flag("user", "u", STR, "", help="Username or UID (format: <name|uid>[:<group|gid>])"),
        Flag("workdir", "w", STR, "", help="Working directory inside the container"),
    ],
    example="skiff exec -it web sh\nskiff exec web cat /etc/hostname",
    interspersed=False,
    min_args=2,
    args_complete="container",
)


def exec_(ctx: Context, argv: list[str]) -> int:
    from skiff.cli import streams
    from skiff.cli.runopts import _env_value, read_kv_file

    opts, args = EXEC.parse(argv)
    if opts.tty and opts.interactive and not os.isatty(0):
        raise ExitStatus(1, "skiff: the input device is not a TTY")
    detach_keys = streams.parse_detach_keys(opts.detach_keys or streams.DEFAULT_DETACH_KEYS)
    env: list[str] = []
    for path in opts.env_file:
        env.extend(
            v for v in (_env_value(x) for x in read_kv_file(path, "env file")) if v is not None
        )
    env.extend(v for v in (_env_value(x) for x in opts.env) if v is not None)
    body: dict[str, Any] = {
        "User": opts.user,
        "Privileged": bool(opts.privileged),
        "Tty": bool(opts.tty),
        "AttachStdin": bool(opts.interactive) and not opts.detach,
        "AttachStdout": not opts.detach,
        "AttachStderr": not opts.detach,
        "Detach": bool(opts.detach),
        "DetachKeys": opts.detach_keys,
        "Env": env or None,
        "WorkingDir": opts.workdir,
        "Cmd": args[1:],
    }
    size = streams.terminal_size(1) if opts.tty else None
    if size:
        body["ConsoleSize"] = list(size)
    client = ctx.client
    created = client.post_json(f"/containers/{q(args[0])}/exec", body=body)
    eid = created["Id"]
    if opts.detach:
        client.request(
            "POST", f"/exec/{q(eid)}/start", body={"Detach": True, "Tty": bool(opts.tty)}
        ).read()
        return 0
    try:
        sock, rest, _ = client.hijack(
            f"/exec/{q(eid)}/start",
            body={
                "Detach": False,
                "Tty": bool(opts.tty),
                **({"ConsoleSize": list(size)} if size else {}),
            },
        )
    except SkiffError as err:
        raise ExitStatus(start_error_status(err) if "OCI runtime" in str(err) else 1, f"{err}")
    outcome = _interact(
        client,
        f"/exec/{q(eid)}",
        sock,
        rest,
        bool(opts.tty),
        bool(opts.interactive),
        detach_keys,
        sig_proxy=False,
    )
    if outcome == "detached":
        return 0
    info = client.get_json(f"/exec/{q(eid)}/json")
    code = info.get("ExitCode")
    return int(code) if code is not None else 0


ATTACH = Command(
    "attach",
    "Attach local standard input, output, and error streams to a running container",
    usage="[OPTIONS] CONTAINER",
    flags=[
        Flag(
            "detach-keys",
            kind=STR,
            default="",
            help="Override the key sequence for detaching a container",
        ),
        Flag("no-stdin", help="Do not attach STDIN"),
        Flag("sig-proxy", default=True, help="Proxy all received signals to the process"),
    ],
    example="skiff attach box   # detach again with ctrl-p ctrl-q",
    min_args=1,
    max_args=1,
    args_complete="container",
)


def attach(ctx: Context, argv: list[str]) -> int:
    from skiff.cli import streams

    opts, args = ATTACH.parse(argv)
    client = ctx.client
    info = client.get_json(f"/containers/{q(args[0])}/json")
    state = info.get("State") or {}
    if not state.get("Running"):
        raise ExitStatus(1, "skiff: You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise ExitStatus(1, "skiff: You cannot attach to a paused container, unpause it first")
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = bool(config.get("OpenStdin")) and not opts.no_stdin
    if tty and stdin and not os.isatty(0):
        raise ExitStatus(1, "skiff: the input device is not a TTY")
    detach_keys = streams.parse_detach_keys(opts.detach_keys or streams.DEFAULT_DETACH_KEYS)
    cid = info["Id"]
    sock, rest, _ = client.hijack(
        f"/containers/{q(cid)}/attach",
        {
            "stream": True,
            "stdin": stdin,
            "stdout": True,
            "stderr": True,
            "detachKeys": opts.detach_keys or None,
        },
    )
    waiter = _Waiter(client, cid, "not-running")
    outcome = _interact(
        client,
        f"/containers/{q(cid)}",
        sock,
        rest,
        tty,
        stdin,
        detach_keys,
        sig_proxy=bool(opts.sig_proxy) and not tty,
    )
    if outcome == "detached":
        return 0
    return waiter.result(10)


# -- inspect / top / port / diff / export / commit / cp / stats / update ----------------------

INSPECT = Command(
    "container inspect",
    "Display detailed information on one or more containers",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    flags=[FORMAT, Flag("size", "s", help="Display total file sizes")],
    example="skiff container inspect -f '{{.State.Status}}' web",
    min_args=1,
    args_complete="container",
)
INSPECT.flags[0] = Flag("format", "f", STR, "", help="Format output using a custom template")


def inspect(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.system import print_inspect

    opts, args = INSPECT.parse(argv)
    return print_inspect(
        args,
        opts.format,
        lambda n: ctx.client.get_json(f"/containers/{q(n)}/json", {"size": opts.size or None}),
    )


TOP = Command(
    "top",
    "Display the running processes of a container",
    usage="CONTAINER [ps OPTIONS]",
    example="skiff top web",
    min_args=1,
    interspersed=False,
    args_complete="container",
)


def top(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.output import tabwrite

    _, args = TOP.parse(argv)
    params = {"ps_args": " ".join(args[1:])} if len(args) > 1 else None
    doc = ctx.client.get_json(f"/containers/{q(args[0])}/top", params)
    lines = ["\t".join(doc.get("Titles") or [])]
    lines += ["\t".join(p) for p in doc.get("Processes") or []]
    sys.stdout.write(tabwrite("\n".join(lines) + "\n", minwidth=20, padding=1))
    return 0


PORT = Command(
    "port",
    "List port mappings or a specific mapping for the container",
    usage="CONTAINER [PRIVATE_PORT[/PROTO]]",
    example="skiff port web 80/tcp",
    min_args=1,
    max_args=2,
    args_complete="container",
)


def port(ctx: Context, argv: list[str]) -> int:
    _, args = PORT.parse(argv)
    info = ctx.client.get_json(f"/containers/{q(args[0])}/json")
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if len(args) == 2:
        want = args[1] if "/" in args[1] else args[1] + "/tcp"
        bindings = ports.get(want)
        if not bindings:
            raise ExitStatus(1, f"Error: No public port '{want}' published for {args[0]}")
        for b in bindings:
            host = b.get("HostIp") or "0.0.0.0"
            print(f"[{host}]:{b['HostPort']}" if ":" in host else f"{host}:{b['HostPort']}")
        return 0

    def sort_key(item: tuple[str, Any]) -> tuple[int, str]:
        num, _, proto = item[0].partition("/")
        return (int(num) if num.isdigit() else 0, proto)

    for key, bindings in sorted(ports.items(), key=sort_key):
        for b in bindings or []:
            host = b.get("HostIp") or "0.0.0.0"
            host = f"[{host}]" if ":" in host else host
            print(f"{key} -> {host}:{b['HostPort']}")
    return 0


DIFF = Command(
    "diff",
    "Inspect changes to files or directories on a container's filesystem",
    usage="CONTAINER",
    example="skiff diff web",
    min_args=1,
    max_args=1,
    args_complete="container",
)


def diff(ctx: Context, argv: list[str]) -> int:
    _, args = DIFF.parse(argv)
    changes = ctx.client.get_json(f"/containers/{q(args[0])}/changes") or []
    for ch in changes:
        print(
            f"{'CAD'[ch.get('Kind', 0)] if ch.get('Kind', 0) in (0, 1, 2) else '?'} {ch.get('Path')}"
        )
    return 0


EXPORT = Command(
    "export",
    "Export a container's filesystem as a tar archive",
    usage="[OPTIONS] CONTAINER",
    flags=[
        Flag("output", "o", STR, "", help="Write to a file, instead of STDOUT", complete="file")
    ],
    example="skiff export -o box.tar box",
    min_args=1,
    max_args=1,
    args_complete="container",
)


def write_stream(resp: Any, output: str, what: str) -> None:
    """Copy a response body to a file (temp + rename) or to stdout (refusing a terminal)."""
    if not output:
        if os.isatty(1):
            resp.close()
            raise ExitStatus(
                1, f"skiff: refusing to write {what} to a terminal. Use the -o flag or redirect"
            )
        out = sys.stdout.buffer
        for chunk in resp.iter_chunks():
            out.write(chunk)
        out.flush()
        return
    tmp = f"{output}.skiff-tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            for chunk in resp.iter_chunks():
                fh.write(chunk)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export(ctx: Context, argv: list[str]) -> int:
    opts, args = EXPORT.parse(argv)
    resp = ctx.client.request("GET", f"/containers/{q(args[0])}/export")
    write_stream(resp, opts.output, "exported content")
    return 0


COMMIT = Command(
    "commit",
    "Create a new image from a container's changes",
    usage="[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
    flags=[
        Flag(
            "author",
            "a",
            STR,
            "",
            help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")',
        ),
        Flag(
            "change",
            "c",
            LIST,
            metavar="list",
            help="Apply Dockerfile instruction to the created image",
        ),
        Flag("message", "m", STR, "", help="Commit message"),
        Flag("pause", "p", BOOL, True, help="Pause container during commit"),
    ],
    example="skiff commit -m 'add config' web myimage:v2",
    min_args=1,
    max_args=2,
    args_complete="container",
)


def split_reference(ref: str) -> tuple[str, str]:
    """repo[:tag] → (repo, tag); a digest reference keeps its digest as the repo part."""
    if "@" in ref:
        return ref, ""
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, _, tag = ref.rpartition(":")
        return repo, tag
    return ref, ""


def commit(ctx: Context, argv: list[str]) -> int:
    opts, args = COMMIT.parse(argv)
    params: dict[str, Any] = {
        "container": args[0],
        "author": opts.author or None,
        "comment": opts.message or None,
        "pause": opts.pause,
        "changes": opts.change or None,
    }
    if len(args) == 2:
        repo, tag = split_reference(args[1])
        params["repo"], params["tag"] = repo, tag or None
    doc = ctx.client.post_json("/commit", params)
    print(doc.get("Id", ""))
    return 0


CP = Command(
    "cp",
    "Copy files/folders between a container and the local filesystem",
    usage="[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n        skiff cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
    flags=[
        Flag("archive", "a", help="Archive mode (copy all uid/gid information)"),
        Flag("follow-link", "L", help="Always follow symbol link in SRC_PATH"),
        Flag("quiet", "q", help="Suppress progress output during copy"),
    ],
    example="skiff cp web:/etc/hostname .\nskiff cp ./config.json web:/etc/app/",
    min_args=2,
    max_args=2,
)


def _split_cp(arg: str) -> tuple[str, str]:
    if arg.startswith(("/", ".")) or ":" not in arg:
        return "", arg
    name, _, path = arg.partition(":")
    return name, path


def cp(ctx: Context, argv: list[str]) -> int:
    opts, args = CP.parse(argv)
    (src_c, src), (dst_c, dst) = _split_cp(args[0]), _split_cp(args[1])
    if src_c and dst_c:
        raise ExitStatus(1, "skiff: copying between containers is not supported")
    if not src_c and not dst_c:
        raise ExitStatus(1, "skiff: must specify at least one container source")
    if src_c:
        return _copy_from(ctx, src_c, src, dst, opts.follow_link)
    return _copy_to(ctx, src, dst_c, dst, opts.archive, opts.follow_link)


def _copy_from(ctx: Context, container: str, src: str, dst: str, follow: bool) -> int:
    import io
    import tarfile

    resp = ctx.client.request("GET", f"/containers/{q(container)}/archive", {"path": src})
    if dst == "-":
        for chunk in resp.iter_chunks():
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return 0
    data = resp.read()
    stat_header = resp.headers.get("x-docker-container-path-stat", "")
    src_name = os.path.basename(src.rstrip("/")) or "/"
    if stat_header:
        import base64

        try:
            src_name = loads(base64.b64decode(stat_header)).get("name") or src_name
        except ValueError:
            pass
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        if os.path.isdir(dst):
            target_dir, rename_to = dst, None
        else:
            parent = os.path.dirname(os.path.abspath(dst))
            if not os.path.isdir(parent):
                raise ExitStatus(1, f"skiff: destination directory {parent!r} does not exist")
            target_dir, rename_to = parent, os.path.basename(dst)
        for m in members:
            if rename_to is not None:
                first, sep, tail = m.name.partition("/")
                if first == src_name:
                    m.name = rename_to + sep + tail
        for m in members:
            parts = m.name.split("/")
            if (
                m.name.startswith("/")
                or ".." in parts
                or (m.islnk() and ".." in m.linkname.split("/"))
            ):
                raise ExitStatus(
                    1, f"skiff: refusing to extract {m.name!r}: it escapes the destination"
                )
        tar.extractall(target_dir, members=members)
    return 0


def _copy_to(ctx: Context, src: str, container: str, dst: str, archive: bool, follow: bool) -> int:
    import io
    import tarfile

    if src == "-":
        data = sys.stdin.buffer.read()
        ctx.client.request(
            "PUT",
            f"/containers/{q(container)}/archive",
            {"path": dst},
            data=data,
            headers={"Content-Type": "application/x-tar"},
        ).read()
        return 0
    if not os.path.lexists(src):
        raise ExitStatus(1, f"skiff: could not find the file {src} in the local filesystem")
    # Where the copy lands: into dst if it is a directory in the container, else as dst.
    target_dir, name = dst, os.path.basename(os.path.normpath(src))
    try:
        ctx.client.request("HEAD", f"/containers/{q(container)}/archive", {"path": dst}).read()
        stat = True
    except NotFound:
        stat = False
    if not stat or (dst.endswith("/") is False and not _container_is_dir(ctx, container, dst)):
        target_dir, name = (
            os.path.dirname(dst.rstrip("/")) or "/",
            os.path.basename(dst.rstrip("/")),
        )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def reset(ti: tarfile.TarInfo) -> tarfile.TarInfo:
            if not archive:
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
            return ti

        tar.add(os.path.realpath(src) if follow else src, arcname=name, filter=reset)
    ctx.client.request(
        "PUT",
        f"/containers/{q(container)}/archive",
        {"path": target_dir},
        data=buf.getvalue(),
        headers={"Content-Type": "application/x-tar"},
    ).read()
    return 0


def _container_is_dir(ctx: Context, container: str, path: str) -> bool:
    import base64

    resp = ctx.client.request("HEAD", f"/containers/{q(container)}/archive", {"path": path})
    resp.close()
    header = resp.headers.get("x-docker-container-path-stat", "")
    if not header:
        return False
    try:
        mode = int(loads(base64.b64decode(header)).get("mode", 0))
    except ValueError:
        return False
    return bool(mode & (1 << 31))  # Go's os.ModeDir


STATS = Command(
    "stats",
    "Display a live stream of container(s) resource usage statistics",
    usage="[OPTIONS] [CONTAINER...]",
    flags=[
        Flag("all", "a", help="Show all containers (default shows just running)"),
        FORMAT,
        Flag("no-stream", help="Disable streaming stats and only pull the first result"),
        Flag("no-trunc", help="Do not truncate output"),
    ],
    example="skiff stats --no-stream",
    args_complete="container",
)

STATS_HEADERS = {
    "Container": "CONTAINER",
    "ID": "CONTAINER ID",
    "Name": "NAME",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}


class StatsRow:
    def __init__(self, name: str, s: dict[str, Any], trunc: bool) -> None:
        from skiff.cli.output import bytes_size, human_size

        self.Container = name
        cid = s.get("id", "")
        self.ID = cid[:12] if trunc else cid
        self.Name = (s.get("name") or "").lstrip("/") or "--"
        cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
        cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
            pre.get("cpu_usage") or {}
        ).get("total_usage", 0)
        sys_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
        online = (
            cpu.get("online_cpus")
            or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
            or 1
        )
        cpu_pct = cpu_delta / sys_delta * online * 100.0 if sys_delta > 0 and cpu_delta > 0 else 0.0
        mem = s.get("memory_stats") or {}
        stats = mem.get("stats") or {}
        usage = mem.get("usage", 0) - stats.get(
            "total_inactive_file", stats.get("inactive_file", 0)
        )
        limit = mem.get("limit", 0)
        mem_pct = usage / limit * 100.0 if limit else 0.0
        rx = sum(n.get("rx_bytes", 0) for n in (s.get("networks") or {}).values())
        tx = sum(n.get("tx_bytes", 0) for n in (s.get("networks") or {}).values())
        rd = wr = 0
        for e in (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
            op = (e.get("op") or "").lower()
            if op == "read":
                rd += e.get("value", 0)
            elif op == "write":
                wr += e.get("value", 0)
        self.CPUPerc = f"{cpu_pct:.2f}%"
        self.MemUsage = f"{bytes_size(usage)} / {bytes_size(limit)}"
        self.MemPerc = f"{mem_pct:.2f}%"
        self.NetIO = f"{human_size(rx, 3)} / {human_size(tx, 3)}"
        self.BlockIO = f"{human_size(rd, 3)} / {human_size(wr, 3)}"
        self.PIDs = str((s.get("pids_stats") or {}).get("current", 0))

    def to_json(self) -> dict[str, str]:
        return {
            k: getattr(self, k)
            for k in (
                "BlockIO",
                "CPUPerc",
                "Container",
                "ID",
                "MemPerc",
                "MemUsage",
                "Name",
                "NetIO",
                "PIDs",
            )
        }


def stats(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.output import render

    opts, args = STATS.parse(argv)
    client = ctx.client
    names = args or [
        c["Id"] for c in client.get_json("/containers/json", {"all": opts.all or None})
    ]
    table = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
    while True:
        rows = []
        for name in names:
            s = client.get_json(f"/containers/{q(name)}/stats", {"stream": False})
            rows.append(StatsRow(name, s, not opts.no_trunc))
        if not opts.no_stream and os.isatty(1):
            sys.stdout.write("\x1b[2J\x1b[H")
        render(opts.format, rows, STATS_HEADERS, table)
        sys.stdout.flush()
        if opts.no_stream:
            return 0
        time.sleep(1)


UPDATE = Command(
    "update",
    "Update configuration of one or more containers",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    flags=[
        Flag("blkio-weight", kind=INT, default=0, help="Block IO (relative weight)"),
        Flag("cpu-period", kind=INT, default=0, help="Limit CPU CFS period"),
        Flag("cpu-quota", kind=INT, default=0, help="Limit CPU CFS quota"),
        Flag("cpu-shares", "c", INT, 0, help="CPU shares (relative weight)"),
        Flag("cpus", kind=STR, default="", help="Number of CPUs"),
        Flag(
            "cpuset-cpus", kind=STR, default="", help="CPUs in which to allow execution (0-3, 0,1)"
        ),
        Flag(
            "cpuset-mems", kind=STR, default="", help="MEMs in which to allow execution (0-3, 0,1)"
        ),
        Flag("memory", "m", STR, "", help="Memory limit"),
        Flag("memory-reservation", kind=STR, default="", help="Memory soft limit"),
        Flag("memory-swap", kind=STR, default="", help="Swap limit equal to memory plus swap"),
        Flag(
            "pids-limit",
            kind=INT,
            default=0,
            help="Tune container pids limit (set -1 for unlimited)",
        ),
        Flag(
            "restart", kind=STR, default="", help="Restart policy to apply when a container exits"
        ),
    ],
    example="skiff update --memory 256m --cpus 0.5 web",
    min_args=1,
    args_complete="container",
)


def update(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.runopts import _size, parse_restart

    opts, args = UPDATE.parse(argv)
    body: dict[str, Any] = {}
    for flag, key in (
        ("blkio-weight", "BlkioWeight"),
        ("cpu-period", "CpuPeriod"),
        ("cpu-quota", "CpuQuota"),
        ("cpu-shares", "CpuShares"),
        ("cpuset-cpus", "CpusetCpus"),
        ("cpuset-mems", "CpusetMems"),
        ("pids-limit", "PidsLimit"),
    ):
        if opts.was_set(flag):
            body[key] = getattr(opts, flag.replace("-", "_"))
    if opts.cpus:
        try:
            body["NanoCpus"] = round(float(opts.cpus) * 1e9)
        except ValueError:
            raise FlagError(f'invalid argument "{opts.cpus}" for "--cpus" flag')
    for flag, key in (("memory", "Memory"), ("memory_reservation", "MemoryReservation")):
        if getattr(opts, flag):
            body[key] = _size(getattr(opts, flag), "--" + flag.replace("_", "-"))
    if opts.memory_swap:
        body["MemorySwap"] = (
            -1 if opts.memory_swap == "-1" else _size(opts.memory_swap, "--memory-swap")
        )
    if opts.restart:
        body["RestartPolicy"] = parse_restart(opts.restart)
    if not body:
        raise ExitStatus(1, "skiff: you must provide one or more flags when using this command")

    def one(name: str) -> None:
        doc = ctx.client.post_json(f"/containers/{q(name)}/update", body=body) or {}
        for w in doc.get("Warnings") or []:
            sys.stderr.write(f"WARNING: {w}\n")

    return for_each(args, one)
