"""OCI lifecycle hooks: run each with the container state JSON on stdin, honouring timeouts.

Where each kind runs (runtime-spec "Lifecycle"):
  prestart, createRuntime   runtime namespace, during create, before pivot_root (main process)
  createContainer           container namespaces, during create, before pivot_root (init)
  startContainer            container namespaces, during start, before the user process (init)
  poststart                 runtime namespace, after start (the `start` verb)
  poststop                  runtime namespace, during delete
A failing hook (non-zero exit, timeout, missing binary) fails the operation, except poststart
and poststop whose failures are logged (as runc does).
"""

from __future__ import annotations

import os

from skiff.errors import FailedPrecondition

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any


def hooks_of(spec: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    return list((spec.get("hooks") or {}).get(kind) or [])


def run_hooks(kind: str, hooks: Sequence[Mapping[str, Any]], state: Mapping[str, Any]) -> None:
    """Run `hooks` of `kind` in order; the first failure raises FailedPrecondition."""
    if not hooks:
        return
    from skiff.runtime import jsonio, prefork

    prefork.children_back_home()  # not into the pre-init's pid namespace
    payload = jsonio.dumps(dict(state)).encode()
    for i, hook in enumerate(hooks):
        run_hook(f"{kind}[{i}]", hook, payload)


def run_hook(name: str, hook: Mapping[str, Any], payload: bytes) -> None:
    path: str = hook["path"]
    args = list(hook.get("args") or [path])
    env = hook.get("env")
    environ = dict(os.environ) if env is None else dict(e.split("=", 1) for e in env if "=" in e)
    timeout = hook.get("timeout")
    stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    try:
        try:
            pid = os.posix_spawn(
                path,
                args,
                environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, stdin_r, 0),
                    (os.POSIX_SPAWN_DUP2, out_w, 1),
                    (os.POSIX_SPAWN_DUP2, out_w, 2),
                ],
            )
        except OSError as err:
            raise FailedPrecondition(f"hook {name} {path}: {err.strerror}") from None
        os.close(stdin_r)
        stdin_r = -1
        os.close(out_w)
        out_w = -1
        try:
            os.write(stdin_w, payload)
        except BrokenPipeError:
            pass  # a hook need not read its stdin
        os.close(stdin_w)
        stdin_w = -1
        output, status = _wait(pid, out_r, timeout)
    finally:
        for fd in (stdin_r, stdin_w, out_r, out_w):
            if fd >= 0:
                os.close(fd)
    if status is None:
        raise FailedPrecondition(f"hook {name} {path}: timed out after {timeout}s (killed)")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        text = output.decode(errors="replace").strip()
        detail = f": {text[-400:]}" if text else ""
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        raise FailedPrecondition(f"hook {name} {path}: {how}{detail}")


def _wait(pid: int, out_fd: int, timeout: int | None) -> tuple[bytes, int | None]:
    """Collect the hook's output and wait for it; (output, wait status or None on timeout)."""
    import select
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    pidfd = os.pidfd_open(pid)
    chunks: list[bytes] = []
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(out_fd, select.POLLIN)
    out_open = True
    exited = False
    try:
        while not exited or out_open:
            wait_ms = None
            if deadline is not None:
                wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            events = poller.poll(wait_ms)
            if not events and deadline is not None and time.monotonic() >= deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                return b"".join(chunks), None
            for fd, _ in events:
                if fd == out_fd:
                    data = os.read(out_fd, 65536)
                    if data:
                        if sum(map(len, chunks)) < 65536:
                            chunks.append(data)
                    else:
                        poller.unregister(out_fd)
                        out_open = False
                elif fd == pidfd and not exited:
                    exited = True
                    poller.unregister(pidfd)
                    # Grandchildren may hold the output pipe open: stop reading once it is idle.
                    if out_open and not select.select([out_fd], [], [], 0.05)[0]:
                        out_open = False
    finally:
        os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    return b"".join(chunks), status
