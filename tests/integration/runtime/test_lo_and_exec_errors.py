"""Differential: a new network namespace has `lo` up, and a program that cannot be executed
fails `create` with runc's message (docker maps them to exit 127 and 126)."""

from __future__ import annotations

from typing import Any

import pytest

Runtime = Any


def test_lo_is_up_in_a_new_network_namespace(runtime: Runtime, runc: Runtime) -> None:
    outs = []
    for rt in (runc, runtime):
        res = rt("run", "-b", str(rt.bundle(["ip", "-o", "link", "show", "lo"])), rt.new_id())
        assert res.returncode == 0, res.stderr
        outs.append(res.stdout.decode())
    for out in outs:
        flags = out.split("<", 1)[1].split(">", 1)[0].split(",")
        assert "UP" in flags, out
        assert "LOOPBACK" in flags, out


@pytest.mark.parametrize(
    ("program", "message"),
    [
        ("no-such-cmd", 'exec: "no-such-cmd": executable file not found in $PATH'),
        ("/etc", 'exec: "/etc": permission denied'),
        ("/etc/passwd", 'exec: "/etc/passwd": permission denied'),
        ("/no/such", 'exec: "/no/such": stat /no/such: no such file or directory'),
    ],
)
def test_create_fails_like_runc_when_the_program_cannot_run(
    runtime: Runtime, runc: Runtime, program: str, message: str
) -> None:
    for rt in (runc, runtime):
        cid = rt.new_id()
        code, err = rt.detached("create", "-b", str(rt.bundle([program])), cid)
        assert code != 0, (rt.binary, err)
        assert message in err.replace('\\"', '"'), (rt.binary, err)
        assert rt("state", cid).returncode != 0 or rt("delete", "--force", cid).returncode == 0
