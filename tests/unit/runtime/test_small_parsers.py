"""Signals, sizes, update flags, exec's process building."""

from __future__ import annotations

import pytest

from skiff.errors import InvalidArgument
from skiff.runtime.execute import process_from_flags
from skiff.runtime.lifecycle import parse_signal
from skiff.runtime.update import parse_bytes, resources_from_flags


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("KILL", 9),
        ("SIGKILL", 9),
        ("sigterm", 15),
        ("9", 9),
        ("15", 15),
        ("HUP", 1),
        ("RTMIN+2", 36),
        ("SIGWINCH", 28),
    ],
)
def test_parse_signal(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("bad", ["NOPE", "0", "65", "SIGRTMIN+40", ""])
def test_parse_signal_rejects(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_signal(bad)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("512", 512),
        ("1k", 1024),
        ("64m", 64 << 20),
        ("1g", 1 << 30),
        ("2GiB", 2 << 30),
        ("-1", -1),
        ("1.5k", 1536),
    ],
)
def test_parse_bytes(text: str, value: int) -> None:
    assert parse_bytes("memory", text) == value


def test_resources_from_flags() -> None:
    res = resources_from_flags(
        {
            "memory": "64m",
            "cpu-quota": "50000",
            "cpu-period": "100000",
            "cpu-shares": "512",
            "pids-limit": "10",
            "cpuset-cpus": "0-1",
        }
    )
    assert res == {
        "memory": {"limit": 64 << 20},
        "cpu": {"quota": 50000, "period": 100000, "shares": 512, "cpus": "0-1"},
        "pids": {"limit": 10},
    }
    with pytest.raises(InvalidArgument, match="cpu-quota"):
        resources_from_flags({"cpu-quota": "lots"})


def test_exec_process_from_flags() -> None:
    base = {
        "args": ["sh"],
        "cwd": "/",
        "env": ["A=1"],
        "user": {"uid": 0, "gid": 0},
        "capabilities": {
            "bounding": ["CAP_KILL"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL"],
        },
    }
    p = process_from_flags(
        base,
        ["id"],
        tty=True,
        cwd="/tmp",
        env=["B=2"],
        user="5:6",
        caps=["CAP_NET_RAW"],
        no_new_privs=True,
    )
    assert p["args"] == ["id"]
    assert p["terminal"] is True
    assert p["env"] == ["A=1", "B=2"]
    assert p["user"] == {"uid": 5, "gid": 6}
    assert p["capabilities"]["bounding"] == ["CAP_KILL", "CAP_NET_RAW"]
    assert "ambient" not in p["capabilities"]
    assert p["noNewPrivileges"] is True
    assert base["args"] == ["sh"]  # the container's own process is untouched
    with pytest.raises(InvalidArgument):
        process_from_flags(base, ["id"], user="root")
