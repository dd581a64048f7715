"""The runc-style flag parser: the forms containerd-shim and conmon use."""

from __future__ import annotations

import pytest

from skiff.errors import InvalidArgument
from skiff.runtime.cli import GLOBAL_FLAGS, VERBS, main, parse_flags


def test_global_then_verb_flags_as_shims_pass_them() -> None:
    argv = [
        "--root",
        "/run/x",
        "--log",
        "/l.json",
        "--log-format=json",
        "--systemd-cgroup",
        "create",
        "--bundle",
        "/b",
        "--pid-file=/p",
        "id1",
    ]
    g, rest = parse_flags(argv, GLOBAL_FLAGS)
    assert g.text("root") == "/run/x"
    assert g.text("log-format") == "json"
    assert g.flag("systemd-cgroup")
    assert rest[0] == "create"
    v, positional = parse_flags(rest[1:], VERBS["create"])
    assert v.text("bundle") == "/b"
    assert v.text("pid-file") == "/p"
    assert positional == ["id1"]


def test_single_dash_long_short_aliases_and_repeatables() -> None:
    v, positional = parse_flags(["-b", "/b", "-bundle", "/c", "-d", "x"], VERBS["run"])
    assert v.text("bundle") == "/c"
    assert v.flag("detach")
    v, positional = parse_flags(
        ["-e", "A=1", "--env", "B=2", "-t", "--user", "1:2", "ctr", "sh", "-c", "echo -n"],
        VERBS["exec"],
    )
    assert v.many("env") == ["A=1", "B=2"]
    assert v.flag("tty")
    assert positional == ["ctr", "sh", "-c", "echo -n"]  # flags stop at the first argument


def test_double_dash_ends_flags() -> None:
    _, positional = parse_flags(["--", "-x"], VERBS["kill"])
    assert positional == ["-x"]


def test_unknown_flag_and_missing_value() -> None:
    with pytest.raises(InvalidArgument, match="flag provided but not defined: -nope"):
        parse_flags(["--nope"], VERBS["start"])
    with pytest.raises(InvalidArgument, match="flag needs an argument: -bundle"):
        parse_flags(["--bundle"], VERBS["create"])


def test_main_errors_are_one_line_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    assert main(["--root", str(tmp_path), "state", "nope"]) == 1
    assert capsys.readouterr().err == 'container "nope" does not exist\n'
    assert main(["--root", str(tmp_path), "bogus"]) == 1
    assert main(["--version"]) == 0
    assert "spec: 1.2.0" in capsys.readouterr().out


def test_list_of_empty_root(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    assert main(["--root", str(tmp_path), "list", "--format", "json"]) == 0
    assert capsys.readouterr().out == "[]\n"
