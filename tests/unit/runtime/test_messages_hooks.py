"""The message channel between the processes of a start, and hook execution."""

from __future__ import annotations

import json
import marshal
import os
from pathlib import Path

import pytest

from skiff.errors import FailedPrecondition, Internal
from skiff.runtime import hooks, messages


def test_messages_round_trip_with_fd() -> None:
    a, b = messages.Channel.pair()
    r, w = os.pipe()
    try:
        a.send(messages.Message(messages.INIT_PID, pid=42))
        a.send(messages.Message(messages.CONSOLE), fd=r)
        a.send(messages.Message(messages.FAILED, reason="mount /proc: EPERM"))
        msg, fd = b.recv()
        assert (msg.kind, msg.pid, fd) == (messages.INIT_PID, 42, None)
        msg, fd = b.recv()
        assert msg.kind == messages.CONSOLE and fd is not None
        os.write(w, b"x")
        assert os.read(fd, 1) == b"x"
        os.close(fd)
        with pytest.raises(messages.ChildFailed, match="mount /proc: EPERM"):
            b.expect(messages.READY)
        a.close()
        with pytest.raises(messages.ChannelClosed):
            b.recv()
    finally:
        os.close(r)
        os.close(w)
        b.close()


def test_unknown_kind_is_a_bug() -> None:
    with pytest.raises(Internal):
        messages.Message("bogus")


def test_data_round_trips_and_garbage_is_refused() -> None:
    data = {"spec": {"process": {"args": ["sh", "-c", "ü"]}, "n": 2**70}, "none": None}
    msg = messages.Message.decode(messages.Message(messages.START, data=data).encode())
    assert (msg.kind, msg.data) == (messages.START, data)
    for garbage in (b"", b"\x00not marshal", marshal.dumps([1, 2]), marshal.dumps({"kind": 3})):
        with pytest.raises(Internal, match="runtime protocol"):
            messages.Message.decode(garbage)


def test_hooks_get_state_on_stdin_in_order(tmp_path: Path) -> None:
    out = tmp_path / "out"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"cat >> {out}; echo >> {out}"], "env": ["X=1"]}
    hooks.run_hooks("poststart", [hook, hook], {"id": "c1", "status": "running"})
    lines = out.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"id": "c1", "status": "running"}] * 2


def test_hook_failure_names_the_hook_and_output() -> None:
    hook = {"path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 4"]}
    with pytest.raises(
        FailedPrecondition, match=r"hook prestart\[0\] /bin/sh: exit status 4: broken"
    ):
        hooks.run_hooks("prestart", [hook], {"id": "c1"})
    with pytest.raises(FailedPrecondition, match="No such file"):
        hooks.run_hooks("prestart", [{"path": "/no/such/hook"}], {"id": "c1"})


def test_hook_timeout_kills() -> None:
    hook = {"path": "/bin/sleep", "args": ["sleep", "20"], "timeout": 1}
    with pytest.raises(FailedPrecondition, match="timed out after 1s"):
        hooks.run_hooks("createRuntime", [hook], {"id": "c1"})


def test_a_failure_keeps_its_error_class_across_processes() -> None:
    from skiff.errors import FailedPrecondition, InvalidArgument
    from skiff.runtime.create import failure_class

    assert failure_class({"error": "InvalidArgument"}) is InvalidArgument
    assert failure_class(None) is FailedPrecondition
    assert failure_class({"error": "OSError"}) is FailedPrecondition  # only skiff.errors
    assert failure_class({"error": "SkiffError"}).__name__ == "SkiffError"
