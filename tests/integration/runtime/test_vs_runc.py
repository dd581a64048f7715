"""Differential tests: one bundle under runc and under skiff-runtime gives the same answers."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

Runtime = Any

STATUS_FIELDS = (
    "Uid",
    "Gid",
    "Groups",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
)


def _both(
    runtime: Runtime, runc: Runtime, args: list[str], mutate: Any = None
) -> list[tuple[int, str, str]]:
    results = []
    for rt in (runc, runtime):
        out = rt("run", "-b", str(rt.bundle(args, mutate)), rt.new_id())
        results.append((out.returncode, out.stdout.decode(), out.stderr.decode()))
    return results


def _status_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_FIELDS:
            fields[key] = " ".join(value.split())
    return fields


@pytest.mark.parametrize("code", [0, 1, 42, 255])
def test_same_exit_codes(runtime: Runtime, runc: Runtime, code: int) -> None:
    (a, _, aerr), (b, _, berr) = _both(runtime, runc, ["sh", "-c", f"exit {code}"])
    assert a == b == code, (aerr, berr)


def test_same_status_default_spec(runtime: Runtime, runc: Runtime) -> None:
    (a, aout, aerr), (b, bout, berr) = _both(runtime, runc, ["cat", "/proc/self/status"])
    assert a == b == 0, (aerr, berr)
    assert _status_fields(aout) == _status_fields(bout)
    assert set(_status_fields(aout)) == set(STATUS_FIELDS)


def test_same_status_user_caps_seccomp(runtime: Runtime, runc: Runtime) -> None:
    def mutate(spec: dict[str, Any]) -> None:
        spec["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20]}
        spec["process"]["noNewPrivileges"] = False
        caps = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_KILL"]
        spec["process"]["capabilities"] = {
            "bounding": [*caps, "CAP_SYS_ADMIN"],
            "effective": caps,
            "permitted": caps,
            "inheritable": caps,
            "ambient": ["CAP_KILL"],
        }
        spec["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
            ],
        }

    script = "cat /proc/self/status; mkdir /tmp/x; echo mkdir=$?"
    (a, aout, aerr), (b, bout, berr) = _both(runtime, runc, ["sh", "-c", script], mutate)
    assert a == b == 0, (aerr, berr)
    assert _status_fields(aout) == _status_fields(bout)
    assert _status_fields(aout)["Seccomp"] == "2"
    assert aout.splitlines()[-1] == bout.splitlines()[-1] == "mkdir=1"
    assert aerr == berr  # "mkdir: can't create directory '/tmp/x': Operation not permitted"


def test_same_hostname_env_and_cwd(runtime: Runtime, runc: Runtime) -> None:
    def mutate(spec: dict[str, Any]) -> None:
        spec["hostname"] = "difftest"
        spec["process"]["env"].append("X=1")
        spec["process"]["cwd"] = "/etc"

    (a, aout, _), (b, bout, _) = _both(
        runtime, runc, ["sh", "-c", "hostname; pwd; env | sort"], mutate
    )
    assert a == b == 0
    assert aout == bout


def test_same_state_shape(runtime: Runtime, runc: Runtime) -> None:
    states = []
    for rt in (runc, runtime):
        cid = rt.new_id()
        code, err = rt.detached("create", "-b", str(rt.bundle(["sleep", "30"])), cid)
        assert code == 0, err
        created = rt.state(cid)
        code, err = rt.detached("start", cid)
        assert code == 0, err
        deadline = time.monotonic() + 5
        while rt.state(cid)["status"] != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        running = rt.state(cid)
        assert rt("kill", cid, "KILL").returncode == 0
        while rt.state(cid)["status"] != "stopped" and time.monotonic() < deadline + 5:
            time.sleep(0.05)
        stopped = rt.state(cid)
        states.append((created, running, stopped))
    for theirs, ours in zip(states[0], states[1], strict=True):
        assert set(theirs) == set(ours)
        assert theirs["status"] == ours["status"]
        assert (theirs["pid"] == 0) == (ours["pid"] == 0)
        assert json.dumps(theirs)  # both serialisable the same way


def test_same_errors_for_unknown_container(runtime: Runtime, runc: Runtime) -> None:
    for verb in (["state"], ["start"], ["kill"], ["delete"]):
        a = runc(*verb, "nope-nope")
        b = runtime(*verb, "nope-nope")
        assert a.returncode == b.returncode == 1, verb
