"""`skiff run -it` / `attach` in a real terminal (tmux): typing, resize, detach keys, exit code."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from .conftest import SKIFF_BIN, Daemon


@pytest.fixture
def tmux() -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    server = f"skiff-cli-{uuid.uuid4().hex[:8]}"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", server, *args], capture_output=True, text=True, timeout=20
        )

    try:
        yield run
    finally:
        run("kill-server")


def wait_for(
    tmux: Callable[..., subprocess.CompletedProcess[str]],
    session: str,
    text: str,
    seconds: float = 15,
) -> str:
    deadline = time.monotonic() + seconds
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-t", session, "-p").stdout
        if text in screen:
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared on the screen:\n{screen}")


def test_run_it_resize_detach_attach_exit(
    daemon: Daemon, name: str, tmux: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    env = f"env SKIFF_HOST={daemon.host}"
    tmux(
        "new-session",
        "-d",
        "-s",
        "run",
        "-x",
        "100",
        "-y",
        "30",
        f"{env} {SKIFF_BIN} run -it --name {name} --network none busybox sh; echo RUN-EXIT=$?; sleep 60",
    )
    wait_for(tmux, "run", "/ #")
    tmux("send-keys", "-t", "run", "echo typed-$((6*7))", "Enter")
    wait_for(tmux, "run", "typed-42")
    tmux("send-keys", "-t", "run", "stty size", "Enter")
    wait_for(tmux, "run", "30 100")
    tmux("resize-window", "-t", "run", "-x", "120", "-y", "40")
    time.sleep(0.3)
    tmux("send-keys", "-t", "run", "stty size", "Enter")
    wait_for(tmux, "run", "40 120")
    tmux("send-keys", "-t", "run", "C-p", "C-q")
    wait_for(tmux, "run", "RUN-EXIT=0")
    assert daemon.docker("inspect", "-f", "{{.State.Running}}", name).out.strip() == "true"

    tmux(
        "new-session",
        "-d",
        "-s",
        "att",
        "-x",
        "90",
        "-y",
        "25",
        f"{env} {SKIFF_BIN} attach {name}; echo ATTACH-EXIT=$?; sleep 60",
    )
    time.sleep(0.8)
    tmux("send-keys", "-t", "att", "echo back-$((2+3))", "Enter")
    wait_for(tmux, "att", "back-5")
    tmux("send-keys", "-t", "att", "stty size; exit 5", "Enter")
    wait_for(tmux, "att", "25 90")
    wait_for(tmux, "att", "ATTACH-EXIT=5")
    assert (
        daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).out.strip()
        == "exited 5"
    )


def test_exec_it_in_tmux(
    daemon: Daemon, name: str, tmux: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    assert (
        daemon.docker(
            "run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "300"
        ).code
        == 0
    )
    probe = daemon.docker("exec", "-t", name, "tty")
    if daemon.kind == "skiffd" and not probe.out.startswith("/dev/pts/"):
        pytest.skip(
            f"skiffd does not give `docker exec -t` a terminal yet: {(probe.out + probe.err).strip()[:120]}"
        )
    tmux(
        "new-session",
        "-d",
        "-s",
        "ex",
        "-x",
        "70",
        "-y",
        "20",
        f"env SKIFF_HOST={daemon.host} {SKIFF_BIN} exec -it {name} sh; echo EXEC-EXIT=$?; sleep 60",
    )
    wait_for(tmux, "ex", "/ #")
    tmux("send-keys", "-t", "ex", "stty size; exit 3", "Enter")
    wait_for(tmux, "ex", "20 70")
    wait_for(tmux, "ex", "EXEC-EXIT=3")


def test_pull_shows_progress_bars_on_a_terminal(
    daemon: Daemon,
    name: str,
    registry: Callable[[], str],
    tmux: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    ref = f"{registry()}/{name}:bar"
    # a layer the daemon does not have yet, so the pull downloads it
    assert (
        daemon.docker(
            "build",
            "-q",
            "--network",
            "none",
            "-t",
            ref,
            "-",
            input="FROM busybox\nRUN echo x > /x\n",
        ).code
        == 0
    )
    pushed = daemon.docker("push", ref)
    if pushed.code != 0 and daemon.kind == "skiffd":
        pytest.skip(
            f"skiffd cannot push yet (the test needs a pushed image): {pushed.err.strip()[:120]}"
        )
    assert pushed.code == 0, pushed.err
    assert daemon.docker("rmi", ref).code == 0
    tmux(
        "new-session",
        "-d",
        "-s",
        "pull",
        "-x",
        "120",
        "-y",
        "20",
        f"env SKIFF_HOST={daemon.host} {SKIFF_BIN} pull {ref}; echo PULL-EXIT=$?; sleep 60",
    )
    screen = wait_for(tmux, "pull", "PULL-EXIT=0", 60)
    assert "Pull complete" in screen and "━" in screen  # a rich bar, not docker's plain lines
    assert ref in screen
    daemon.docker("rmi", ref)
