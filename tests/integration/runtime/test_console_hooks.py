"""A tty delivered over --console-socket; lifecycle hooks in order with the state on stdin."""

from __future__ import annotations

import array
import json
import os
import select
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

Runtime = Any


def _recv_fd(server: socket.socket, timeout: float = 10) -> tuple[str, int]:
    server.settimeout(timeout)
    conn, _ = server.accept()
    with conn:
        fds = array.array("i")
        msg, anc, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: fds.itemsize])
    assert fds, "no fd received"
    return msg.decode(), fds[0]


def _read_until(fd: int, needle: bytes, timeout: float = 10) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {needle!r}; got {buf!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


def test_tty_over_console_socket(runtime: Runtime, tmp_path: Path) -> None:
    sock_path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)

    def mutate(spec: dict[str, Any]) -> None:
        spec["process"]["terminal"] = True
        spec["process"]["consoleSize"] = {"height": 33, "width": 101}

    bundle = runtime.bundle(["sh"], mutate)
    cid = runtime.new_id()
    proc = runtime.popen(
        "create", "--bundle", str(bundle), "--console-socket", sock_path, cid,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    master = -1
    try:
        name, master = _recv_fd(server)
        assert name == "/dev/ptmx"
        assert proc.wait(timeout=20) == 0, proc.stderr.read() if proc.stderr else ""
        out = runtime("start", cid)
        assert out.returncode == 0, out.stderr
        os.write(master, b"echo tty-$((40+2)); tty; stty size\n")
        seen = _read_until(master, b"33 101")
        assert b"tty-42" in seen
        assert b"/dev/pts/0" in seen
        os.write(master, b"exit\n")
        deadline = time.monotonic() + 10
        while runtime.state(cid)["status"] != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        if master >= 0:
            os.close(master)
        server.close()
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()


def test_run_with_terminal_proxies_the_pty(runtime: Runtime) -> None:
    bundle = runtime.bundle(
        ["sh", "-c", "tty; echo $((6*7))"], lambda s: s["process"].update(terminal=True)
    )
    out = runtime("run", "-b", str(bundle), runtime.new_id(), stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().replace("\r", "").split()
    assert lines == ["/dev/pts/0", "42"]


def test_hooks_run_in_order_with_state_on_stdin(runtime: Runtime, tmp_path: Path) -> None:
    logdir = tmp_path / "hooklog"
    logdir.mkdir()
    log = logdir / "log"

    def hook(kind: str, target: str) -> dict[str, Any]:
        # the state arrives on stdin; one line per hook: kind, then the state JSON
        return {"path": "/bin/sh", "args": ["sh", "-c", f"echo {kind} $(cat) >> {target}"]}

    def mutate(spec: dict[str, Any]) -> None:
        spec["mounts"].append(
            {
                "destination": "/hooklog",
                "type": "bind",
                "source": str(logdir),
                "options": ["rbind", "rw"],
            }
        )
        spec["hooks"] = {
            "prestart": [hook("prestart", str(log))],
            "createRuntime": [hook("createRuntime", str(log))],
            "createContainer": [hook("createContainer", str(log))],
            "startContainer": [hook("startContainer", "/hooklog/log")],
            "poststart": [hook("poststart", str(log))],
            "poststop": [hook("poststop", str(log))],
        }

    bundle = runtime.bundle(["sh", "-c", "echo main >> /hooklog/log"], mutate)
    cid = runtime.new_id()
    out = runtime("run", "-b", str(bundle), cid)
    assert out.returncode == 0, out.stderr
    lines = log.read_text().splitlines()
    kinds = [line.split(" ", 1)[0] for line in lines]
    assert kinds[:4] == ["prestart", "createRuntime", "createContainer", "startContainer"]
    assert kinds[-1] == "poststop"
    assert set(kinds[4:-1]) == {"main", "poststart"}
    states = {
        line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1]) for line in lines if line != "main"
    }
    for kind, state in states.items():
        assert state["id"] == cid, kind
        assert state["bundle"] == str(bundle), kind
    assert states["createRuntime"]["status"] == "creating"
    assert states["createRuntime"]["pid"] > 0
    assert states["poststart"]["status"] == "running"
    assert states["poststop"]["status"] == "stopped"


def test_failing_hook_fails_create_and_cleans_up(runtime: Runtime) -> None:
    def mutate(spec: dict[str, Any]) -> None:
        spec["hooks"] = {
            "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]
        }

    cid = runtime.new_id()
    out = runtime("create", "-b", str(runtime.bundle(["true"], mutate)), cid)
    assert out.returncode == 1
    assert "createRuntime[0]" in out.stderr.decode()
    assert "nope" in out.stderr.decode()
    assert not (runtime.root / cid).exists()


def test_hook_timeout(runtime: Runtime) -> None:
    def mutate(spec: dict[str, Any]) -> None:
        spec["hooks"] = {
            "prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]
        }

    started = time.monotonic()
    out = runtime("create", "-b", str(runtime.bundle(["true"], mutate)), runtime.new_id())
    assert out.returncode == 1
    assert "timed out" in out.stderr.decode()
    assert time.monotonic() - started < 10


def test_runtime_hooks_run_in_the_runtimes_pid_namespace(runtime: Runtime, tmp_path: Path) -> None:
    """The runtime's first child is pid 1 of the container's pid namespace (prefork.py); the
    hooks the runtime runs afterwards (prestart, poststart, poststop) must not land there."""
    log = tmp_path / "pidns"

    def hook(kind: str) -> dict[str, Any]:
        return {
            "path": "/bin/sh",
            "args": ["sh", "-c", f"echo {kind} $(readlink /proc/self/ns/pid) >> {log}"],
        }

    def mutate(spec: dict[str, Any]) -> None:
        spec["hooks"] = {kind: [hook(kind)] for kind in ("prestart", "poststart", "poststop")}

    out = runtime("run", "-b", str(runtime.bundle(["true"], mutate)), runtime.new_id())
    assert out.returncode == 0, out.stderr
    ours = os.readlink("/proc/self/ns/pid")
    seen = dict(line.split() for line in log.read_text().splitlines())
    assert seen == {"prestart": ours, "poststart": ours, "poststop": ours}
