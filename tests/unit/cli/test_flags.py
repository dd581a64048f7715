"""pflag-compatible parsing: docker's spellings, errors and exit-code classes."""

from __future__ import annotations

import pytest

from skiff.cli.containers import _create_command
from skiff.cli.flags import FlagError, HelpRequested, UsageError
from skiff.cli.streams import EscapeFilter, parse_detach_keys


def test_run_flag_spellings() -> None:
    cmd = _create_command("run", run=True)
    opts, args = cmd.parse(
        [
            "-dit",
            "--rm",
            "-eA=1",
            "--env=B=2",
            "-p",
            "80",
            "--name=x",
            "-m512m",
            "busybox",
            "sh",
            "-c",
            "echo --not-a-flag",
        ]
    )
    assert (opts.detach, opts.interactive, opts.tty, opts.rm) == (True, True, True, True)
    assert (
        opts.env == ["A=1", "B=2"]
        and opts.publish == ["80"]
        and opts.name == "x"
        and opts.memory == "512m"
    )
    assert args == ["busybox", "sh", "-c", "echo --not-a-flag"]
    assert opts.was_set("name") and not opts.was_set("user")
    opts, _ = cmd.parse(["--sig-proxy=false", "--rm=false", "busybox"])
    assert opts.sig_proxy is False and opts.rm is False


def test_flag_errors() -> None:
    cmd = _create_command("run", run=True)
    for argv, msg in (
        (["--nope", "busybox"], "unknown flag: --nope"),
        (["-Z", "busybox"], "unknown shorthand flag: 'Z' in -Z"),
        (["--name"], "flag needs an argument: --name"),
        (["--cpu-shares", "x", "busybox"], 'invalid argument "x"'),
    ):
        with pytest.raises(FlagError, match=msg):
            cmd.parse(argv)
    with pytest.raises(UsageError, match="requires at least 1 argument"):
        cmd.parse([])
    with pytest.raises(HelpRequested):
        cmd.parse(["--help"])
    assert "Example:" in cmd.help_text() and "--publish" in cmd.help_text()


def test_detach_keys() -> None:
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("a,ctrl-@,ctrl-[") == b"a\x00\x1b"
    with pytest.raises(FlagError):
        parse_detach_keys("ctrl-pq")
    f = EscapeFilter(b"\x10\x11")
    assert f.feed(b"ab\x10") == (b"ab", False)
    assert f.feed(b"x") == (b"\x10x", False)  # a broken sequence passes through
    assert f.feed(b"\x10") == (b"", False)
    assert f.feed(b"\x11rest") == (b"", True)


def test_filter_and_key_value_items() -> None:
    from skiff.cli.flags import parse_filters, parse_kv

    assert parse_filters([]) is None
    assert parse_filters(["Label=a=b", "label=c", "until=1h"]) == {
        "label": {"a=b": True, "c": True},
        "until": {"1h": True},
    }
    with pytest.raises(FlagError, match="bad format of filter"):
        parse_filters(["dangling"])
    assert parse_kv(["a=1", "b", "c=x=y"]) == {"a": "1", "b": "", "c": "x=y"}
