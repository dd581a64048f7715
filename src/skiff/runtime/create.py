"""`create`: the main process of a container start (youki's "builder" + "main process").

The child is forked first — by the installed command before it even imports the CLI
(prefork.py), else here — and imports the container-side modules on the second core while
this process imports its own: a container start is mostly Python imports otherwise. Forked
early, it is pid 1 of a new pid namespace: a pre-init, which becomes the container's init
itself when the config allows (`settle`); otherwise it is dismissed and an intermediate
forked, which enters the namespaces and forks init. This process refuses what it must before
anything exists: config.json validated, seccomp compiled, the id claimed (state dir created
exclusively); only then does the child get the Start message. While the child enters the
namespaces and init sets up its root filesystem, this process makes the container's cgroup,
applies linux.resources (errors name the field) and moves init into it from outside; init
waits for that before it needs the cgroup (init.CgroupJoin). This process then serves the
children's messages: id maps, the init pid, the create hooks, the console, Ready. When
`create` returns, init blocks on the exec fifo and state.json says so. On any failure
everything made so far is undone: init killed, cgroup removed, state dir deleted, and the
children, seeing end-of-stream, exit.
"""

from __future__ import annotations

import os

from skiff.errors import FailedPrecondition, InvalidArgument, SkiffError
from skiff.linux.syscalls import PR_SET_CHILD_SUBREAPER, SYSCALLS
from skiff.runtime import config, hooks, log, messages, warmup
from skiff.runtime import state as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class CreateOptions:
    __slots__ = (
        "bundle",
        "console_socket",
        "foreground",
        "no_new_keyring",
        "no_pivot",
        "pid_file",
        "preserve_fds",
    )

    def __init__(
        self,
        bundle: str,
        *,
        pid_file: str | None = None,
        console_socket: str | None = None,
        preserve_fds: int = 0,
        no_pivot: bool = False,
        no_new_keyring: bool = False,
        foreground: bool = False,
    ) -> None:
        self.bundle = bundle
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.preserve_fds = preserve_fds
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.foreground = foreground


class Created:
    """A created container: its state, a pidfd of init, and (for `run`) the pty master."""

    __slots__ = ("console_master", "pidfd", "state")

    def __init__(self, state: st.ContainerState, pidfd: int, console_master: int | None) -> None:
        self.state = state
        self.pidfd = pidfd
        self.console_master = console_master


def make_cgroup(spec: dict[str, Any], container_id: str) -> Any:
    """Make the container's cgroup and apply linux.resources (errors name the field); `serve`
    puts init in it. Nothing is left behind when that fails."""
    from skiff.linux import cgroups

    linux = spec.get("linux") or {}
    manager = cgroups.open_manager(linux.get("cgroupsPath") or None, container_id)
    try:
        manager.create()
        log.trace("cgroup created")
        manager.apply(with_default_device_rules(linux.get("resources") or {}, linux.get("devices")))
    except BaseException as err:
        _destroy_quietly(manager)
        if isinstance(err, SkiffError):
            raise err.wrap("config.json: linux.resources") from err
        raise
    return manager


# What runc allows on top of config.json's device rules: mknod of anything, the default
# device nodes every container gets, and the pty devices.
DEFAULT_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
)


def with_default_device_rules(resources: dict[str, Any], devices: Any) -> dict[str, Any]:
    """linux.resources with the default device allow rules (and one per linux.devices entry)
    appended, as runc does: config.json usually starts with a deny-all rule."""
    out = dict(resources)
    rules = list(resources.get("devices") or [])
    rules.extend(dict(rule) for rule in DEFAULT_DEVICE_RULES)
    for entry in devices or ():
        if isinstance(entry, dict) and entry.get("type") in ("c", "b", "u") and "major" in entry:
            rules.append(
                {
                    "allow": True,
                    "type": "c" if entry["type"] == "u" else entry["type"],
                    "major": entry["major"],
                    "minor": entry.get("minor", 0),
                    "access": "rwm",
                }
            )
    out["devices"] = rules
    return out


def compile_seccomp(spec: dict[str, Any]) -> tuple[bytes | None, int]:
    profile = (spec.get("linux") or {}).get("seccomp")
    if not profile:
        return None, 0
    from skiff.linux import seccomp

    try:
        return seccomp.compile(profile), seccomp.flags_of(profile)
    except SkiffError as err:
        raise err.wrap("config.json: linux.seccomp") from err


def warn_unsupported(spec: dict[str, Any]) -> None:
    process = spec.get("process") or {}
    if process.get("apparmorProfile"):
        log.warning(
            f"apparmorProfile {process['apparmorProfile']!r} ignored: AppArmor is not supported"
        )
    if process.get("selinuxLabel"):
        log.warning(f"selinuxLabel {process['selinuxLabel']!r} ignored: SELinux is not supported")
    if (spec.get("linux") or {}).get("mountLabel"):
        log.warning("linux.mountLabel ignored: SELinux is not supported")


class Child:
    """The process the Start message goes to: an intermediate, or a pre-init — forked early
    as pid 1 of a new pid namespace (prefork.py) — that becomes the container's init itself
    when the config suits that (`becomes_init`): one Python fork less, no intermediate."""

    __slots__ = ("becomes_init", "channel", "pid", "pre_init")

    def __init__(self, pid: int, channel: messages.Channel, *, pre_init: bool = False) -> None:
        self.pid = pid
        self.channel = channel
        self.pre_init = pre_init
        self.becomes_init = False


def create(root: str, container_id: str, opts: CreateOptions) -> Created:
    log.trace("create")
    st.check_id(container_id)
    bundle = os.path.abspath(opts.bundle)
    from skiff.runtime import prefork

    early = prefork.take()  # forked by the installed command before it imported us
    child = Child(early[0], early[1], pre_init=early[2]) if early is not None else fork_child()
    if opts.foreground and not prefork.is_subreaper():
        # Before the intermediate exits (it waits for Start): init then becomes our child.
        SYSCALLS.prctl(PR_SET_CHILD_SUBREAPER, 1)
    state: st.ContainerState | None = None
    try:
        try:
            wait_for_gate()
            state = prepare(root, container_id, bundle, opts, child)
            if child.becomes_init:
                state.pid = child.pid
            # While the intermediate (or init) enters the namespaces.
            try:
                cgroup = make_cgroup(state.spec, container_id)
            except BaseException:
                if not state.pid:
                    state.pid = init_pid_if_any(child.channel)  # so that it is killed below
                raise
            state.cgroup = cgroup.to_dict()
            init_pid, pidfd, master = serve(child, state, cgroup)
            log.trace("init ready")
        except BaseException:
            child.channel.close()  # the children see end-of-stream and exit; then reap
            raise
        finally:
            # A pre-init that became init is our child, not to be waited for here (unless
            # Start never went out: then it sees end-of-stream and exits).
            if not child.becomes_init or state is None:
                reap(child.pid)
        try:
            state.pid = init_pid
            state.start_time = st.process_start_time(init_pid) or 0
            state.status_hint = st.CREATED
            state.save()
            if opts.pid_file:
                write_pid_file(opts.pid_file, init_pid)
        except BaseException:
            _kill_quietly(init_pid, pidfd)
            os.close(pidfd)
            if master is not None:
                os.close(master)
            raise
        return Created(state, pidfd, master)
    except BaseException:
        if state is not None:
            if state.pid:
                _kill_quietly(state.pid, -1)
            if state.cgroup:
                _destroy_quietly(state.cgroup_manager())
            st.remove_state_dir(state.dir)
        raise
    finally:
        child.channel.close()


def fork_child() -> Child:
    """Fork the intermediate now (no early one, or the pre-init does not suit the config)."""
    from skiff.runtime import prefork

    prefork.children_back_home()
    preload_shared()
    parent, sub = messages.Channel.pair()
    # Fork first: the intermediate imports the container-side modules while this process
    # validates and prepares. If we refuse the config it sees end-of-stream and exits.
    pid = fork_intermediate(sub, close_in_child=parent)
    log.trace("forked")
    sub.close()
    return Child(pid, parent)


def pre_init_suits(spec: dict[str, Any]) -> bool:
    """Whether a pre-init can be this container's init: the config wants a new pid
    namespace, no user namespace (it must exist before the pid namespace, to own it) and no
    time namespace (like the pid one, only children enter it)."""
    types = {e.get("type"): e for e in (spec.get("linux") or {}).get("namespaces") or ()}
    pid = types.get("pid")
    return pid is not None and not pid.get("path") and "user" not in types and "time" not in types


def settle(child: Child, spec: dict[str, Any]) -> None:
    """Who takes Start: the pre-init if it suits the config, else an intermediate forked now
    (the pre-init is dismissed: killed and reaped)."""
    if not child.pre_init:
        return
    if pre_init_suits(spec):
        child.becomes_init = True
        return
    child.channel.close()
    _kill_quietly(child.pid, -1)
    fresh = fork_child()
    child.pid, child.channel, child.pre_init = fresh.pid, fresh.channel, False


# skiff extension (the CLI is runc's without it): a caller that starts the runtime before the
# bundle is written passes the read end of a pipe in this variable. `create` starts up, forks
# the intermediate and then waits for one byte before it reads config.json: the interpreter's
# start-up overlaps the caller's work. End of stream instead of the byte = cancelled.
GATE_ENV = "_SKIFF_RUNTIME_CREATE_GATE_FD"


def wait_for_gate() -> None:
    raw = os.environ.pop(GATE_ENV, None)
    if not raw:
        return
    fd = int(raw)
    try:
        data = os.read(fd, 1)
    finally:
        os.close(fd)
    if data != b"1":
        raise FailedPrecondition(
            "create cancelled: the caller closed the gate before the bundle was ready"
        )


def prepare(
    root: str,
    container_id: str,
    bundle: str,
    opts: CreateOptions,
    child: Child,
) -> st.ContainerState:
    """Validate, claim the id, make the fifo, connect the console socket; send Start to the
    intermediate (or to the pre-init that becomes init: `child` says which, once settled)."""
    spec = config.load(bundle)
    log.trace("config loaded")
    rootfs = config.rootfs_path(spec, bundle)
    terminal = bool(spec["process"].get("terminal"))
    if terminal and not opts.console_socket and not opts.foreground:
        raise InvalidArgument(
            "cannot allocate tty if skiff-runtime will detach without setting console socket"
        )
    if opts.console_socket and not terminal:
        raise InvalidArgument(
            "cannot use --console-socket if process.terminal is false in config.json"
        )
    warn_unsupported(spec)
    if opts.no_pivot:
        log.warning("--no-pivot ignored: the root filesystem is always entered with pivot_root")
    seccomp_program, seccomp_flags = compile_seccomp(spec)
    settle(child, spec)
    channel = child.channel
    state_dir = st.make_state_dir(root, container_id)
    state = st.ContainerState(
        root,
        container_id,
        bundle=bundle,
        rootfs=rootfs,
        spec=spec,
        annotations=spec.get("annotations"),
    )
    fifo_fd = console_fd = -1
    try:
        fifo = os.path.join(state_dir, st.EXEC_FIFO)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)
        fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        if opts.console_socket:
            from skiff.linux import pty

            console_fd = pty.connect(opts.console_socket)
        from skiff.runtime.context import StartContext

        ctx = StartContext(
            container_id,
            spec,
            bundle,
            rootfs,
            channel,
            seccomp=seccomp_program,
            seccomp_flags=seccomp_flags,
            fifo_fd=fifo_fd,
            console_socket=console_fd if console_fd >= 0 else None,
            console_to_parent=terminal and not opts.console_socket,
            preserve_fds=opts.preserve_fds,
            no_pivot=opts.no_pivot,
            new_keyring=not opts.no_new_keyring,
        )
        data = ctx.to_data()
        data["log"] = log.settings()  # an intermediate forked early has not seen the flags
        channel.send(messages.Message(messages.START, data=data), fds=ctx.fds())
        log.trace("start sent")
    except BaseException:
        st.remove_state_dir(state_dir)
        raise
    finally:
        for fd in (fifo_fd, console_fd):
            if fd >= 0:
                os.close(fd)
    return state


def preload_shared() -> None:
    """Before a late fork (no early child), load what both sides need, so it is loaded once:
    the C library (the main process's prctl, every syscall of the children)."""
    from skiff.linux.syscalls import libc

    libc()


def fork_intermediate(channel: messages.Channel, *, close_in_child: messages.Channel) -> int:
    """Fork the intermediate; the child drops the main process's end of the channel so
    either side sees end-of-stream when the other dies."""
    pid = os.fork()
    if pid == 0:
        try:
            close_in_child.close()
            warmup.forget_primer()
            from skiff.runtime import intermediate

            intermediate.create_main(channel)
        finally:
            os._exit(1)
    return pid


def init_pid_if_any(channel: messages.Channel) -> int:
    """After a failure between Start and `serve`: init's pid if the intermediate forks it
    (then it must be killed), else 0. Only the intermediate speaks this early, and it
    either forks init and says so or stops: failed, or waiting for id maps it won't get."""
    channel.sock.settimeout(5.0)
    try:
        while True:
            msg, fd = channel.recv()
            if fd is not None:
                os.close(fd)
            if msg.kind == messages.INIT_PID:
                return msg.pid
            if msg.kind in (messages.FAILED, messages.USERNS_UNSHARED):
                return 0
    except (messages.ChannelClosed, OSError):
        return 0


def serve(child: Child, state: st.ContainerState, cgroup: Any) -> tuple[int, int, int | None]:
    """Answer the children until init is Ready; returns (init pid, its pidfd, pty master).
    Init goes into `cgroup` as soon as its pid is known (it waits for that: CgroupJoined):
    at once when the pre-init is init, else when the intermediate says InitPid."""
    channel = child.channel
    spec = state.spec
    linux = spec.get("linux") or {}
    init_pid = 0
    pidfd = -1
    master: int | None = None
    if child.becomes_init:
        init_pid = child.pid
        pidfd = os.pidfd_open(init_pid)
        move_into_cgroup(channel, cgroup, init_pid)
    while True:
        try:
            msg, fd = channel.recv()
        except messages.ChannelClosed:
            raise FailedPrecondition(
                "container init exited before it was ready"
                if init_pid
                else "intermediate process died"
            ) from None
        if fd is not None and msg.kind != messages.CONSOLE:
            os.close(fd)
        kind = msg.kind
        if kind == messages.USERNS_UNSHARED:
            from skiff.linux import namespaces

            try:
                namespaces.write_id_maps(
                    child.pid, linux.get("uidMappings") or [], linux.get("gidMappings") or []
                )
            except OSError as err:
                raise FailedPrecondition(f"user namespace: {err.strerror}") from None
            channel.send(messages.Message(messages.USERNS_MAPPED))
        elif kind == messages.INIT_PID:
            init_pid = msg.pid
            pidfd = os.pidfd_open(init_pid)
            state.pid = init_pid
            move_into_cgroup(channel, cgroup, init_pid)
        elif kind == messages.RUN_CREATE_HOOKS:
            oci = state.oci_state(st.CREATING)
            oci["pid"] = init_pid
            hooks.run_hooks("prestart", hooks.hooks_of(spec, "prestart"), oci)
            hooks.run_hooks("createRuntime", hooks.hooks_of(spec, "createRuntime"), oci)
            channel.send(messages.Message(messages.HOOKS_DONE, pid=init_pid))
        elif kind == messages.CONSOLE:
            master = fd
        elif kind == messages.READY:
            if not init_pid:
                raise FailedPrecondition("container init ready before its pid was known")
            return init_pid, pidfd, master
        elif kind == messages.FAILED:
            if master is not None:
                os.close(master)
            if pidfd >= 0:
                os.close(pidfd)
            raise failure_class(msg.data)(msg.reason)


def move_into_cgroup(channel: messages.Channel, cgroup: Any, init_pid: int) -> None:
    """Put init into the container's cgroup and tell it so (it waits: init.CgroupJoin).
    Then, while init sets up, load what comes after `create` (start, wait, delete)."""
    cgroup.add_process(init_pid)
    warmup.stop_priming()  # that was the attach the priming was for
    channel.send(messages.Message(messages.CGROUP_JOINED))
    log.trace("init moved into its cgroup")
    import select

    from skiff.runtime import foreground, lifecycle

    _ = foreground, lifecycle, select  # select: `start` polls the exec fifo


def failure_class(data: dict[str, Any] | None) -> type[SkiffError]:
    """The error class a Failed message names (one of skiff.errors), else FailedPrecondition."""
    import skiff.errors

    name = (data or {}).get("error")
    found = getattr(skiff.errors, name, None) if isinstance(name, str) else None
    if isinstance(found, type) and issubclass(found, SkiffError):
        return found
    return FailedPrecondition


def reap(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue


def write_pid_file(path: str, pid: int) -> None:
    path = os.path.abspath(path)
    st.write_atomic(path, str(pid).encode())


def _kill_quietly(pid: int, pidfd: int) -> None:
    try:
        if pidfd >= 0:
            SYSCALLS.pidfd_send_signal(pidfd, 9)
        else:
            os.kill(pid, 9)
    except OSError:
        pass
    wait_gone(pid, pidfd, 2.0)


def wait_gone(pid: int, pidfd: int, timeout: float) -> bool:
    """Wait until `pid` has exited (reaping it when it is our child)."""
    import select

    own = -1
    if pidfd < 0:
        try:
            own = pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = -1
    try:
        if pidfd >= 0:
            select.select([pidfd], [], [], timeout)
    finally:
        if own >= 0:
            os.close(own)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return st.process_start_time(pid) is None


def _destroy_quietly(cgroup: Any) -> None:
    try:
        cgroup.destroy()
    except Exception as err:
        log.warning(f"remove cgroup: {err}")
