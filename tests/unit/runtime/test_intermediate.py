"""The intermediate's namespace steps, recorded without root."""

from __future__ import annotations

import os
import threading

from skiff.linux.syscalls import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    RecordingSyscalls,
)
from skiff.runtime import messages
from skiff.runtime.intermediate import NamespacePlan, enter


def test_plan_from_spec_joins_user_first_and_unshares_the_rest(tmp_path: object) -> None:
    spec = {
        "linux": {
            "namespaces": [
                {"type": "pid"},
                {"type": "network", "path": "/proc/self/ns/net"},
                {"type": "mount"},
                {"type": "user", "path": "/proc/self/ns/user"},
                {"type": "ipc"},
            ]
        }
    }
    plan = NamespacePlan.from_spec(spec)
    assert plan.join == [("user", "/proc/self/ns/user"), ("network", "/proc/self/ns/net")]
    assert plan.new_user is False
    assert plan.unshare_flags == CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC


def test_enter_sequence_with_new_user_namespace() -> None:
    sys = RecordingSyscalls()
    plan = NamespacePlan([("network", "/proc/self/ns/net")], True, CLONE_NEWUTS | CLONE_NEWNS)
    ours, theirs = messages.Channel.pair()

    def main_process() -> None:
        msg, _ = theirs.recv()
        assert msg.kind == messages.USERNS_UNSHARED
        theirs.send(messages.Message(messages.USERNS_MAPPED))

    helper = threading.Thread(target=main_process)
    helper.start()
    try:
        enter(plan, ours, sys=sys)
    finally:
        helper.join(5)
        ours.close()
        theirs.close()
    assert sys.names() == ["setns", "unshare", "setresgid", "setresuid", "unshare"]
    assert sys.calls[0][1][1] == CLONE_NEWNET
    assert sys.calls[1][1] == (CLONE_NEWUSER,)
    assert sys.calls[4][1] == (CLONE_NEWUTS | CLONE_NEWNS,)


def test_enter_joins_the_cgroup_first() -> None:
    order: list[str] = []

    class FakeCgroup:
        def add_process(self, pid: int) -> None:
            assert pid == os.getpid()
            order.append("cgroup")

    class Rec(RecordingSyscalls):
        def unshare(self, flags: int) -> None:
            order.append("unshare")

    ours, theirs = messages.Channel.pair()
    try:
        enter(NamespacePlan([], False, CLONE_NEWPID), ours, cgroup=FakeCgroup(), sys=Rec())
    finally:
        ours.close()
        theirs.close()
    assert order == ["cgroup", "unshare"]


def test_the_child_speaks_only_after_its_pid_is_sent() -> None:
    """run() forks the child, sends InitPid, then lets the child go: the main process never
    sees the child's messages (Ready, …) before its pid, however the two are scheduled."""
    from skiff.runtime.intermediate import run

    for _ in range(3):
        ours, theirs = messages.Channel.pair()
        pid = os.fork()
        if pid == 0:  # the intermediate: no namespaces to enter; its child says Ready at once
            theirs.close()
            ready = messages.Message(messages.READY)
            run(NamespacePlan([], False, 0), ours, lambda ch=ours, m=ready: ch.send(m))
        ours.close()
        try:
            first, _ = theirs.recv()
            second, _ = theirs.recv()
        finally:
            theirs.close()
            os.waitpid(pid, 0)
        assert (first.kind, second.kind) == (messages.INIT_PID, messages.READY)
        assert first.pid > 0
