"""prefork: which command lines fork the intermediate early, and what is left when none takes it."""

from __future__ import annotations

import gc
import os

import pytest

from skiff.runtime import prefork


@pytest.mark.parametrize(
    ("argv", "verb"),
    [
        (["run", "--bundle", "b", "id"], "run"),
        (["--root", "/r", "create", "id"], "create"),
        (["--root=/r", "--debug", "run", "id"], "run"),
        (["-root", "run", "state", "id"], "state"),  # "run" is --root's value here
        (["--log", "/l", "--log-format", "json", "exec", "id", "run"], "exec"),
        (["--systemd-cgroup", "delete", "id"], "delete"),
        (["--", "run"], "run"),
        (["--root", "/r"], None),
        ([], None),
    ],
)
def test_verb_of(argv: list[str], verb: str | None) -> None:
    assert prefork.verb_of(argv) == verb


def test_other_verbs_fork_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(prefork.SUBREAPER_ENV, "1")
    prefork.fork_early(["--root", "/r", "state", "id"])
    assert prefork.take() is None
    # The launcher's word is taken (and removed from the environment) whatever the verb.
    assert prefork.is_subreaper()
    assert prefork.SUBREAPER_ENV not in os.environ
    monkeypatch.delenv(prefork.SUBREAPER_ENV, raising=False)
    prefork.fork_early(["state", "id"])
    assert not prefork.is_subreaper()


def test_an_early_child_nobody_takes_is_ended_and_reaped() -> None:
    try:
        prefork.fork_early(["create", "id"])
    finally:
        gc.enable()  # fork_early turns the collector off for the command's process
    pending = prefork.take()
    assert pending is not None
    pid, channel, pre_init = pending
    # As root it is pid 1 of a new pid namespace (a pre-init), not in ours.
    assert pre_init == (os.geteuid() == 0)
    if pre_init:
        assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    # ... and our own children are back in our namespace.
    hold_r, hold_w = os.pipe()
    probe = os.fork()
    if probe == 0:
        os.close(hold_w)
        os.read(hold_r, 1)  # alive (not a zombie) while its namespace is looked at
        os._exit(0)
    try:
        assert os.readlink(f"/proc/{probe}/ns/pid") == os.readlink("/proc/self/ns/pid")
    finally:
        os.close(hold_w)
        os.close(hold_r)
        os.waitpid(probe, 0)
    prefork._pending = pending  # as if the command had failed before `create`
    prefork.discard()
    assert prefork.take() is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped
    assert channel.fileno() == -1  # closed
