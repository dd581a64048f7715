"""Entry point of the `skiff` command: global flags, verb dispatch, errors → exit codes.

Verbs live in one module per group (containers, images, system, networks, volumes, build,
registry, completion) and are imported only when used, so `skiff ps` loads the client and
the ps code and nothing else. Exit codes follow docker: 0 ok, 1 error, 125 flag/daemon error of
`run`, 126/127 cannot invoke / not found, or the container's own status.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # no `typing` at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from skiff.client.api import Client
    from skiff.errors import SkiffError

# verb -> (module, function, one-line summary)
VERBS: dict[str, tuple[str, str, str]] = {
    "attach": (
        "containers",
        "attach",
        "Attach local standard input, output, and error streams to a running container",
    ),
    "build": ("build", "build", "Build an image from a Dockerfile"),
    "commit": ("containers", "commit", "Create a new image from a container's changes"),
    "completion": ("completion", "completion", "Print the shell completion script (bash or zsh)"),
    "cp": ("containers", "cp", "Copy files/folders between a container and the local filesystem"),
    "create": ("containers", "create", "Create a new container"),
    "diff": (
        "containers",
        "diff",
        "Inspect changes to files or directories on a container's filesystem",
    ),
    "events": ("system", "events", "Get real time events from the server"),
    "exec": ("containers", "exec_", "Execute a command in a running container"),
    "export": ("containers", "export", "Export a container's filesystem as a tar archive"),
    "history": ("images", "history", "Show the history of an image"),
    "images": ("images", "images", "List images"),
    "import": (
        "images",
        "import_",
        "Import the contents from a tarball to create a filesystem image",
    ),
    "info": ("system", "info", "Display system-wide information"),
    "inspect": ("system", "inspect", "Return low-level information on skiff objects"),
    "kill": ("containers", "kill", "Kill one or more running containers"),
    "load": ("images", "load", "Load an image from a tar archive or STDIN"),
    "login": ("system", "login", "Log in to a registry"),
    "logout": ("system", "logout", "Log out from a registry"),
    "logs": ("containers", "logs", "Fetch the logs of a container"),
    "pause": ("containers", "pause", "Pause all processes within one or more containers"),
    "port": ("containers", "port", "List port mappings or a specific mapping for the container"),
    "ps": ("containers", "ps", "List containers"),
    "pull": ("images", "pull", "Download an image from a registry"),
    "push": ("images", "push", "Upload an image to a registry"),
    "rename": ("containers", "rename", "Rename a container"),
    "restart": ("containers", "restart", "Restart one or more containers"),
    "rm": ("containers", "rm", "Remove one or more containers"),
    "rmi": ("images", "rmi", "Remove one or more images"),
    "run": ("containers", "run", "Create and run a new container from an image"),
    "save": (
        "images",
        "save",
        "Save one or more images to a tar archive (streamed to STDOUT by default)",
    ),
    "start": ("containers", "start", "Start one or more stopped containers"),
    "stats": (
        "containers",
        "stats",
        "Display a live stream of container(s) resource usage statistics",
    ),
    "stop": ("containers", "stop", "Stop one or more running containers"),
    "tag": ("images", "tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "top": ("containers", "top", "Display the running processes of a container"),
    "unpause": ("containers", "unpause", "Unpause all processes within one or more containers"),
    "update": ("containers", "update", "Update configuration of one or more containers"),
    "version": ("system", "version", "Show the skiff version information"),
    "wait": (
        "containers",
        "wait",
        "Block until one or more containers stop, then print their exit codes",
    ),
}

# group -> {subverb -> (module, function, summary)}
GROUPS: dict[str, dict[str, tuple[str, str, str]]] = {
    "container": {
        **{
            v: VERBS[v]
            for v in (
                "attach",
                "commit",
                "cp",
                "create",
                "diff",
                "exec",
                "export",
                "inspect",
                "kill",
                "logs",
                "pause",
                "port",
                "rename",
                "restart",
                "rm",
                "run",
                "start",
                "stats",
                "stop",
                "top",
                "unpause",
                "update",
                "wait",
            )
        },
        "inspect": (
            "containers",
            "inspect",
            "Display detailed information on one or more containers",
        ),
        "ls": ("containers", "ps", "List containers"),
        "list": ("containers", "ps", "List containers"),
        "prune": ("containers", "prune", "Remove all stopped containers"),
    },
    "image": {
        "bootstrap": ("images", "bootstrap", "Build a base image offline (busybox, debian)"),
        "build": VERBS["build"],
        "history": VERBS["history"],
        "import": VERBS["import"],
        "inspect": ("images", "inspect", "Display detailed information on one or more images"),
        "load": VERBS["load"],
        "ls": ("images", "images", "List images"),
        "list": ("images", "images", "List images"),
        "prune": ("images", "prune", "Remove unused images"),
        "pull": VERBS["pull"],
        "push": VERBS["push"],
        "rm": ("images", "rmi", "Remove one or more images"),
        "save": VERBS["save"],
        "tag": VERBS["tag"],
    },
    "network": {
        "connect": ("networks", "connect", "Connect a container to a network"),
        "create": ("networks", "create", "Create a network"),
        "disconnect": ("networks", "disconnect", "Disconnect a container from a network"),
        "inspect": ("networks", "inspect", "Display detailed information on one or more networks"),
        "ls": ("networks", "ls", "List networks"),
        "prune": ("networks", "prune", "Remove all unused networks"),
        "rm": ("networks", "rm", "Remove one or more networks"),
    },
    "volume": {
        "create": ("volumes", "create", "Create a volume"),
        "inspect": ("volumes", "inspect", "Display detailed information on one or more volumes"),
        "ls": ("volumes", "ls", "List volumes"),
        "prune": ("volumes", "prune", "Remove unused local volumes"),
        "rm": ("volumes", "rm", "Remove one or more volumes"),
    },
    "system": {
        "df": ("system", "df", "Show skiff disk usage"),
        "events": VERBS["events"],
        "info": VERBS["info"],
        "prune": ("system", "prune", "Remove unused data"),
    },
    "registry": {
        "serve": ("registry", "serve", "Run an OCI distribution registry server"),
        "gc": ("registry", "gc", "Garbage-collect unreferenced blobs of a registry's storage"),
    },
}
ALIASES = {"ls": ("container", "ls"), "rmi": None}

GROUP_SUMMARIES = {
    "container": "Manage containers",
    "image": "Manage images",
    "network": "Manage networks",
    "volume": "Manage volumes",
    "system": "Manage skiff",
    "registry": "Run and maintain a registry",
}

GLOBAL_USAGE = """Usage:  skiff [OPTIONS] COMMAND

A Docker-compatible container engine client. It talks to skiffd over the Engine API.

Global options:
  -H, --host string     Daemon socket to connect to (env SKIFF_HOST, DOCKER_HOST;
                        default unix:///run/skiff/skiff.sock)
      --tls             Use TLS; implied by --tlsverify
      --tlscacert file  Trust certs signed only by this CA
      --tlscert file    Path to TLS certificate file
      --tlskey file     Path to TLS key file
      --tlsverify       Use TLS and verify the remote
      --config dir      Location of client config files (default ~/.skiff)
  -v, --version         Print version information and quit
  -h, --help            Print this help
"""


class ExitStatus(Exception):
    """Ends the command with `code`; `message` (if any) goes to stderr."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def for_each(
    names: list[str],
    action: Callable[[str], object],
    *,
    echo: bool = True,
    skip: Callable[[SkiffError], bool] | None = None,
) -> int:
    """Apply `action` to each name in turn, printing each name that worked when `echo`; then
    report the failures together (exit 1). An error `skip` accepts is neither printed nor
    reported (`network rm --force` on a missing network)."""
    from skiff.errors import SkiffError

    failed = []
    for name in names:
        try:
            action(name)
        except SkiffError as err:
            if skip is None or not skip(err):
                failed.append(str(err))
            continue
        if echo:
            print(name)
    if failed:
        sys.stdout.flush()
        raise ExitStatus(1, "\n".join(failed))
    return 0


class Context:
    """What every verb gets: where the daemon is, and a client made on first use."""

    def __init__(self, host: str, tls: Any = None, config_dir: str | None = None) -> None:
        self.host = host
        self.tls = tls
        self.config_dir = (
            config_dir or os.environ.get("SKIFF_CONFIG") or os.path.expanduser("~/.skiff")
        )
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from skiff.client.api import Client

            self._client = Client(self.host, tls=self.tls)
        return self._client


_GLOBAL_VALUE = {
    "-H": "host",
    "--host": "host",
    "--tlscacert": "tlscacert",
    "--tlscert": "tlscert",
    "--tlskey": "tlskey",
    "--config": "config",
    "-l": "log_level",
    "--log-level": "log_level",
    "--context": "context",
    "-c": "context",
}
_GLOBAL_BOOL = {"--tls": "tls", "--tlsverify": "tlsverify", "-D": "debug", "--debug": "debug"}


def _parse_globals(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    opts: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.partition("=")
        if name in _GLOBAL_VALUE:
            if not eq:
                if i + 1 >= len(argv):
                    raise ExitStatus(125, f"skiff: flag needs an argument: {name}")
                value = argv[i + 1]
                i += 1
            opts[_GLOBAL_VALUE[name]] = value
        elif name.startswith("-H") and len(name) > 2 and not name.startswith("--"):
            opts["host"] = arg[2:]
        elif name in _GLOBAL_BOOL:
            opts[_GLOBAL_BOOL[name]] = value.lower() not in ("false", "0") if eq else True
        elif arg in ("-v", "--version"):
            opts["version"] = True
        elif arg in ("-h", "--help"):
            opts["help"] = True
        elif arg == "--":
            i += 1
            break
        else:
            raise ExitStatus(125, f"skiff: unknown flag: {arg} (see 'skiff --help')")
        i += 1
    return opts, argv[i:]


def _global_help() -> str:
    lines = [GLOBAL_USAGE, "Commands:"]
    width = max(len(v) for v in VERBS) + 3
    for verb in sorted(VERBS):
        lines.append(f"  {verb.ljust(width)}{VERBS[verb][2]}")
    lines += ["", "Management commands:"]
    for group in sorted(GROUPS):
        lines.append(f"  {group.ljust(width)}{GROUP_SUMMARIES[group]}")
    lines += ["", "Run 'skiff COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def _group_help(group: str) -> str:
    lines = [f"Usage:  skiff {group} COMMAND", "", GROUP_SUMMARIES[group], "", "Commands:"]
    subs = GROUPS[group]
    width = max(len(v) for v in subs) + 3
    for sub in sorted(subs):
        lines.append(f"  {sub.ljust(width)}{subs[sub][2]}")
    lines += ["", f"Run 'skiff {group} COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def _tls_options(gopts: dict[str, Any]) -> Any:
    """--tls/--tlsverify and the PEM files; as docker, DOCKER_TLS_VERIFY turns verification on
    and DOCKER_CERT_PATH (or SKIFF_CERT_PATH) holds ca.pem, cert.pem and key.pem by default."""
    env_verify = bool(os.environ.get("SKIFF_TLS_VERIFY") or os.environ.get("DOCKER_TLS_VERIFY"))
    verify = bool(gopts.get("tlsverify")) or env_verify
    if not (gopts.get("tls") or verify or gopts.get("tlscert")):
        return None
    from skiff.client.hosts import TLSOptions

    cert_dir = os.environ.get("SKIFF_CERT_PATH") or os.environ.get("DOCKER_CERT_PATH") or ""

    def pem(flag: str, default: str) -> str | None:
        value = gopts.get(flag)
        if value:
            return str(value)
        candidate = os.path.join(cert_dir, default) if cert_dir else ""
        return candidate if candidate and os.path.exists(candidate) else None

    return TLSOptions(
        verify=verify,
        cacert=pem("tlscacert", "ca.pem"),
        cert=pem("tlscert", "cert.pem"),
        key=pem("tlskey", "key.pem"),
    )


def resolve_verb(args: list[str]) -> tuple[str, tuple[str, str, str] | None, list[str]]:
    """(display name, (module, function, summary) or None, remaining argv)."""
    verb = args[0]
    if verb in GROUPS:
        if len(args) < 2 or args[1] in ("-h", "--help", "help"):
            return verb, None, args[1:]
        sub = args[1]
        entry = GROUPS[verb].get(sub)
        if entry is None:
            raise ExitStatus(
                1, f"skiff: '{verb} {sub}' is not a skiff command (see 'skiff {verb} --help')"
            )
        return f"{verb} {sub}", entry, args[2:]
    if verb == "ls":
        return "container ls", GROUPS["container"]["ls"], args[1:]
    entry = VERBS.get(verb)
    if entry is None:
        raise ExitStatus(1, f"skiff: '{verb}' is not a skiff command (see 'skiff --help')")
    return verb, entry, args[1:]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _main(argv)
    except ExitStatus as st:
        if st.message:
            sys.stderr.write(st.message.rstrip("\n") + "\n")
        return st.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = None
        except Exception:
            pass
        return 1


def _main(argv: list[str]) -> int:
    from skiff.cli.flags import FlagError, HelpRequested, UsageError
    from skiff.errors import SkiffError

    gopts, args = _parse_globals(argv)
    if gopts.get("version"):
        # like `docker -v`: the client's own version, without asking the daemon
        from skiff.client.api import MAX_API_VERSION

        sys.stdout.write(f"skiff version 0.1.0, API {MAX_API_VERSION}\n")
        return 0
    if gopts.get("help") or not args or args[0] == "help":
        if args and args[0] == "help" and len(args) > 1:
            args = [*args[1:], "--help"]
        else:
            sys.stdout.write(_global_help())
            return 0
    from skiff.client.hosts import resolve_host

    tls = _tls_options(gopts)
    ctx = Context(resolve_host(gopts.get("host")), tls, gopts.get("config"))
    name, entry, rest = resolve_verb(args)
    if entry is None:
        sys.stdout.write(_group_help(name))
        return 0
    module, func, _ = entry
    # __import__ rather than importlib.import_module: importing importlib costs ~3 ms
    __import__(f"skiff.cli.{module}")
    mod = sys.modules[f"skiff.cli.{module}"]
    try:
        code = getattr(mod, func)(ctx, rest)
    except HelpRequested as h:
        sys.stdout.write(
            h.command.help_text().replace(f"skiff {h.command.name}", f"skiff {name}", 1)
        )
        return 0
    except FlagError as err:
        sys.stderr.write(f"skiff: {err} (see 'skiff {name} --help')\n")
        return 125
    except UsageError as err:
        sys.stderr.write(f"skiff: {err} (see 'skiff {name} --help')\n")
        return 1
    except SkiffError as err:
        sys.stderr.write(f"{err}\n")
        return 1
    sys.stdout.flush()
    return int(code or 0)


if __name__ == "__main__":
    # Run the copy imported as skiff.cli.main, so verbs raising its ExitStatus are caught here
    # (under `python -m`, this file is also __main__, a second module with its own classes).
    from skiff.cli.main import main as _main_of_package

    sys.exit(_main_of_package())
