"""Entry point of `skiff-runtime`: runc's command line, for containerd-shim, conmon and people.

    skiff-runtime [global flags] VERB [verb flags] ARGS...

Flags are parsed the way runc's CLI library does: `--flag value`, `--flag=value`, single-dash
long forms (`-bundle x`), short aliases, flags before positional arguments. The parser is a
table, not argparse: it costs nothing at import, and every container start pays for imports.
Errors print one plain line on stderr (and a record to --log), exit status 1.
"""

from __future__ import annotations

import os
import sys

from skiff.errors import InvalidArgument, SkiffError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

VERSION = "0.1.0"
SPEC_VERSION = "1.2.0"

# name -> (aliases, takes a value, repeatable)
FlagTable = dict[str, tuple[tuple[str, ...], bool, bool]]

GLOBAL_FLAGS: FlagTable = {
    "root": ((), True, False),
    "log": ((), True, False),
    "log-format": ((), True, False),
    "debug": ((), False, False),
    "systemd-cgroup": ((), False, False),
    "rootless": ((), True, False),
    "criu": ((), True, False),
    "help": (("h",), False, False),
    "version": (("v",), False, False),
}

VERBS: dict[str, FlagTable] = {
    "create": {
        "bundle": (("b",), True, False),
        "pid-file": ((), True, False),
        "console-socket": ((), True, False),
        "no-pivot": ((), False, False),
        "no-new-keyring": ((), False, False),
        "preserve-fds": ((), True, False),
    },
    "run": {
        "bundle": (("b",), True, False),
        "pid-file": ((), True, False),
        "console-socket": ((), True, False),
        "no-pivot": ((), False, False),
        "no-new-keyring": ((), False, False),
        "preserve-fds": ((), True, False),
        "detach": (("d",), False, False),
        "keep": ((), False, False),
    },
    "start": {},
    "state": {},
    "kill": {"all": (("a",), False, False)},
    "delete": {"force": (("f",), False, False)},
    "exec": {
        "process": (("p",), True, False),
        "tty": (("t",), False, False),
        "cwd": ((), True, False),
        "env": (("e",), True, True),
        "user": (("u",), True, False),
        "additional-gids": (("g",), True, True),
        "detach": (("d",), False, False),
        "pid-file": ((), True, False),
        "console-socket": ((), True, False),
        "cap": (("c",), True, True),
        "no-new-privs": ((), False, False),
        "preserve-fds": ((), True, False),
        "apparmor": ((), True, False),
        "process-label": ((), True, False),
        "ignore-paused": ((), False, False),
    },
    "ps": {"format": (("f",), True, False)},
    "list": {"format": (("f",), True, False), "quiet": (("q",), False, False)},
    "pause": {},
    "resume": {},
    "update": {
        "resources": (("r",), True, False),
        "memory": ((), True, False),
        "memory-reservation": ((), True, False),
        "memory-swap": ((), True, False),
        "kernel-memory": ((), True, False),
        "cpu-quota": ((), True, False),
        "cpu-period": ((), True, False),
        "cpu-shares": ((), True, False),
        "cpu-rt-period": ((), True, False),
        "cpu-rt-runtime": ((), True, False),
        "cpuset-cpus": ((), True, False),
        "cpuset-mems": ((), True, False),
        "pids-limit": ((), True, False),
        "blkio-weight": ((), True, False),
    },
    "features": {},
    "spec": {"bundle": (("b",), True, False), "rootless": ((), False, False)},
}

USAGE = """usage: skiff-runtime [global options] command [command options] [arguments...]

An OCI runtime with runc's command line.

commands:
  create    create a container        start     start a created container
  run       create and start          state     print a container's state
  kill      signal a container        delete    delete a container
  exec      run a process inside      ps        processes of a container
  list      list containers           pause     freeze a container
  resume    thaw a container          update    change resource limits
  features  what this runtime can do  spec      write a default config.json

global options:
  --root DIR  --log FILE  --log-format text|json  --debug  --systemd-cgroup
"""


class Args:
    """Parsed flags (name -> value, True, or list for repeatable ones) and positionals."""

    __slots__ = ("flags", "positional")

    def __init__(self) -> None:
        self.flags: dict[str, object] = {}
        self.positional: list[str] = []

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.flags.get(name, default)
        return value if isinstance(value, str) or value is None else str(value)

    def flag(self, name: str) -> bool:
        value = self.flags.get(name, False)
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes")
        return bool(value)

    def many(self, name: str) -> list[str]:
        value = self.flags.get(name)
        return list(value) if isinstance(value, list) else []

    def number(self, name: str, default: int = 0) -> int:
        value = self.flags.get(name)
        if value is None:
            return default
        try:
            return int(str(value))
        except ValueError:
            raise InvalidArgument(f"--{name}: want an integer, got {value!r}") from None


def parse_flags(
    argv: list[str], table: FlagTable, *, stop_at_positional: bool = True
) -> tuple[Args, list[str]]:
    """Parse leading flags of `argv` per `table`; returns (args, the rest after the flags)."""
    lookup: dict[str, str] = {}
    for name, (aliases, _, _) in table.items():
        lookup[name] = name
        for alias in aliases:
            lookup[alias] = name
    args = Args()
    i = 0
    while i < len(argv):
        item = argv[i]
        if item == "--":
            return args, argv[i + 1 :]
        if not item.startswith("-") or item == "-":
            if stop_at_positional:
                return args, argv[i:]
            args.positional.append(item)
            i += 1
            continue
        body = item.lstrip("-")
        name, eq, inline = body.partition("=")
        canonical = lookup.get(name)
        if canonical is None:
            raise InvalidArgument(f"flag provided but not defined: -{name}")
        _, takes_value, repeatable = table[canonical]
        value: object
        if takes_value:
            if eq:
                value = inline
            else:
                i += 1
                if i >= len(argv):
                    raise InvalidArgument(f"flag needs an argument: -{name}")
                value = argv[i]
        else:
            value = inline if eq else True
        if repeatable:
            existing = args.flags.setdefault(canonical, [])
            assert isinstance(existing, list)
            existing.append(value)
        else:
            args.flags[canonical] = value
        i += 1
    return args, []


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from skiff.runtime import log

    try:
        global_args, rest = parse_flags(argv, GLOBAL_FLAGS)
        if global_args.flag("version"):
            print(f"skiff-runtime version {VERSION}\nspec: {SPEC_VERSION}")
            return 0
        if not rest or global_args.flag("help") or rest[0] in ("help", "--help", "-h"):
            sys.stdout.write(USAGE)
            return 0 if (global_args.flag("help") or rest) else 1
        fmt = global_args.text("log-format", "text") or "text"
        if fmt not in ("text", "json"):
            raise InvalidArgument(f"invalid log-format: {fmt}")
        log.configure(global_args.text("log"), fmt, global_args.flag("debug"))
        if global_args.flag("systemd-cgroup"):
            log.debug("--systemd-cgroup given: skiff-runtime manages cgroups through cgroupfs")
        verb = rest[0]
        if verb not in VERBS:
            raise InvalidArgument(f"No help topic for '{verb}'")
        args, positional = parse_flags(rest[1:], VERBS[verb])
        args.positional = positional
        if verb in ("create", "run", "exec"):
            # First of all: these attach a process to a cgroup in ~10 ms (see warmup.py).
            from skiff.runtime.warmup import prime_cgroup_attach

            prime_cgroup_attach()
        root = global_args.text("root") or _default_root()
        handler: Callable[[str, Args], int] = globals()[f"cmd_{verb}"]
        return handler(root, args)
    except SkiffError as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        return 130
    except OSError as err:
        return _fail(_os_error_text(err))
    except Exception as err:  # a bug: still one line for the caller, the trace in --debug
        if log.debug_enabled():
            import traceback

            log.debug(traceback.format_exc())
        return _fail(f"internal error: {type(err).__name__}: {err}")


def run_and_exit() -> None:
    """The installed command: `main()` with the cycle collector off, then exit at once with
    its status.

    Skips the interpreter's teardown (every module's globals freed one by one: ~1 ms of a
    container start); stdout and stderr are flushed first, and a failed flush fails the
    command, as Python's own exit does."""
    import gc

    # Short-lived, or asleep while a container runs: the cycle collector would only cost
    # time, and copy-on-write faults in the children it forks.
    gc.disable()
    code = main()
    from skiff.runtime import prefork

    prefork.discard()  # an intermediate forked early that no `create` took
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        code = code or 120
    os._exit(code)


def _fail(message: str) -> int:
    from skiff.runtime import log

    log.error(message)
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    return 1


def _os_error_text(err: OSError) -> str:
    text = err.strerror or str(err)
    if err.filename:
        text = f"{text}: {err.filename}"
    return text


def _default_root() -> str:
    from skiff.runtime.state import DEFAULT_ROOT

    return DEFAULT_ROOT


def _one_id(args: Args, verb: str, extra: int = 0) -> str:
    if not args.positional:
        raise InvalidArgument(f'"{verb}" requires a container id')
    if len(args.positional) > 1 + extra:
        raise InvalidArgument(
            f'"{verb}" takes the container id{" and " + str(extra) + " more" if extra else ""}, got {args.positional}'
        )
    return args.positional[0]


# --- verbs ---------------------------------------------------------------------------------------


def _create_options(args: Args, *, foreground: bool) -> object:
    from skiff.runtime.create import CreateOptions

    return CreateOptions(
        args.text("bundle") or os.getcwd(),
        pid_file=args.text("pid-file"),
        console_socket=args.text("console-socket"),
        preserve_fds=args.number("preserve-fds"),
        no_pivot=args.flag("no-pivot"),
        no_new_keyring=args.flag("no-new-keyring"),
        foreground=foreground,
    )


def cmd_create(root: str, args: Args) -> int:
    from skiff.runtime.create import create

    container_id = _one_id(args, "create")
    created = create(root, container_id, _create_options(args, foreground=False))  # type: ignore[arg-type]
    os.close(created.pidfd)
    return 0


def cmd_run(root: str, args: Args) -> int:
    from skiff.runtime import log
    from skiff.runtime.create import create

    container_id = _one_id(args, "run")
    detach = args.flag("detach")
    opts = _create_options(args, foreground=not detach)
    created = create(root, container_id, opts)  # type: ignore[arg-type]
    from skiff.runtime import lifecycle  # loaded by `create` while init set up

    try:
        try:
            lifecycle.start_state(created.state)
            log.trace("started")
        except BaseException:
            lifecycle.delete_state(created.state, force=True)
            raise
        if detach:
            return 0
        from skiff.runtime import foreground

        code = foreground.wait(created.state.pid, created.pidfd, master=created.console_master)
        log.trace("container exited")
        if not args.flag("keep"):
            lifecycle.delete_state(created.state, force=True)
        log.trace("deleted")
        return code
    finally:
        os.close(created.pidfd)
        if created.console_master is not None:
            os.close(created.console_master)


def cmd_start(root: str, args: Args) -> int:
    from skiff.runtime import lifecycle

    lifecycle.start(root, _one_id(args, "start"))
    return 0


def cmd_state(root: str, args: Args) -> int:
    from skiff.runtime import jsonio
    from skiff.runtime.state import ContainerState

    state = ContainerState.load(root, _one_id(args, "state"))
    print(jsonio.dumps_indent(state.oci_state()))
    return 0


def cmd_kill(root: str, args: Args) -> int:
    from skiff.runtime import lifecycle

    container_id = _one_id(args, "kill", extra=1)
    signal = args.positional[1] if len(args.positional) > 1 else "SIGTERM"
    lifecycle.kill(root, container_id, signal, all_processes=args.flag("all"))
    return 0


def cmd_delete(root: str, args: Args) -> int:
    from skiff.runtime import lifecycle

    if not args.positional:
        raise InvalidArgument('"delete" requires a container id')
    failed = 0
    for container_id in args.positional:
        try:
            lifecycle.delete(root, container_id, force=args.flag("force"))
        except SkiffError as err:
            if len(args.positional) == 1:
                raise
            _fail(str(err))
            failed += 1
    return 1 if failed else 0


def cmd_pause(root: str, args: Args) -> int:
    from skiff.runtime import lifecycle

    lifecycle.pause(root, _one_id(args, "pause"))
    return 0


def cmd_resume(root: str, args: Args) -> int:
    from skiff.runtime import lifecycle

    lifecycle.resume(root, _one_id(args, "resume"))
    return 0


def cmd_exec(root: str, args: Args) -> int:
    from skiff.runtime import execute
    from skiff.runtime.state import ContainerState

    if not args.positional:
        raise InvalidArgument('"exec" requires a container id')
    container_id, command = args.positional[0], args.positional[1:]
    process_file = args.text("process")
    if process_file:
        process = execute.load_process_file(process_file)
    else:
        if not command:
            raise InvalidArgument("exec: args must not be empty (give a command or --process)")
        state = ContainerState.load(root, container_id)
        base = dict(state.spec.get("process") or {"user": {"uid": 0, "gid": 0}, "cwd": "/"})
        process = execute.process_from_flags(
            base,
            command,
            tty=args.flag("tty"),
            cwd=args.text("cwd"),
            env=args.many("env"),
            user=args.text("user"),
            caps=args.many("cap"),
            no_new_privs=args.flag("no-new-privs"),
        )
        gids = args.many("additional-gids")
        if gids:
            user = dict(process.get("user") or {})
            try:
                user["additionalGids"] = [int(g) for g in gids]
            except ValueError:
                raise InvalidArgument(f"exec --additional-gids: want numbers, got {gids}") from None
            process["user"] = user
    if args.text("apparmor") or args.text("process-label"):
        from skiff.runtime import log

        log.warning("exec: --apparmor/--process-label ignored: not supported")
    opts = execute.ExecOptions(
        detach=args.flag("detach"),
        pid_file=args.text("pid-file"),
        console_socket=args.text("console-socket"),
        preserve_fds=args.number("preserve-fds"),
    )
    return execute.exec_process(root, container_id, process, opts)


def cmd_ps(root: str, args: Args) -> int:
    from skiff.runtime import inspect

    container_id = args.positional[0] if args.positional else ""
    if not container_id:
        raise InvalidArgument('"ps" requires a container id')
    sys.stdout.write(
        inspect.ps(root, container_id, args.text("format", "table") or "table", args.positional[1:])
    )
    return 0


def cmd_list(root: str, args: Args) -> int:
    from skiff.runtime import inspect

    sys.stdout.write(
        inspect.list_containers(
            root, args.text("format", "table") or "table", quiet=args.flag("quiet")
        )
    )
    return 0


def cmd_update(root: str, args: Args) -> int:
    from skiff.runtime import update

    update.update(root, _one_id(args, "update"), args.flags)
    return 0


def cmd_features(root: str, args: Args) -> int:
    from skiff.runtime import features, jsonio

    print(jsonio.dumps_indent(features.features(), indent=4))
    return 0


def cmd_spec(root: str, args: Args) -> int:
    from skiff.runtime import specgen

    specgen.write_spec(args.text("bundle") or os.getcwd(), rootless=args.flag("rootless"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
