"""The command as a whole, without a daemon: help, completion, connection errors, exit codes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .recorder import Recorder


def skiff(
    *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skiff.cli.main", *args],
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        input=input,
        timeout=30,
    )


def test_not_running_message_and_host_resolution(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SKIFF_HOST", "DOCKER_HOST")}
    r = skiff("-H", f"unix://{tmp_path}/no.sock", "ps", env=env)
    assert r.returncode == 1
    assert (
        r.stderr
        == f"Cannot connect to skiffd at unix://{tmp_path}/no.sock: is it running? start it with `skiffd` or `make demo`\n"
    )
    r = skiff(
        "ps",
        env=dict(
            env, SKIFF_HOST=f"unix://{tmp_path}/a.sock", DOCKER_HOST=f"unix://{tmp_path}/b.sock"
        ),
    )
    assert f"{tmp_path}/a.sock" in r.stderr
    r = skiff("ps", env=dict(env, DOCKER_HOST=f"unix://{tmp_path}/b.sock"))
    assert f"{tmp_path}/b.sock" in r.stderr


def test_help_for_every_verb_has_an_example() -> None:
    from skiff.cli.completion import _all_commands

    for name, (cmd, _) in _all_commands().items():
        if cmd is None:
            continue
        assert cmd.example, name
        assert cmd.help_text().startswith("Usage:"), name
    r = skiff("run", "--help")
    assert (
        r.returncode == 0 and "Example:" in r.stdout and "skiff run --rm -it busybox sh" in r.stdout
    )
    assert skiff("--help").returncode == 0 and skiff("container", "--help").returncode == 0


def test_completion_scripts_are_valid() -> None:
    r = skiff("completion", "bash")
    assert r.returncode == 0 and "complete -F _skiff skiff" in r.stdout
    assert subprocess.run(["bash", "-n"], input=r.stdout, text=True).returncode == 0
    z = skiff("completion", "zsh")
    assert z.returncode == 0 and z.stdout.startswith("#compdef skiff")
    if shutil.which("zsh"):
        assert subprocess.run(["zsh", "-n"], input=z.stdout, text=True).returncode == 0


def test_ps_against_a_scripted_daemon(tmp_path: Path) -> None:
    import json

    containers = [
        {
            "Id": "f" * 64,
            "Names": ["/web"],
            "Image": "busybox",
            "Command": "sleep 300",
            "Created": 0,
            "Ports": [],
            "Labels": {},
            "State": "running",
            "Status": "Up 2 minutes",
        }
    ]

    def handler(req):  # type: ignore[no-untyped-def]
        if req.path.endswith("/_ping"):
            return 200, {"API-Version": "1.45"}, b"OK"
        return 200, {"Content-Type": "application/json"}, json.dumps(containers).encode()

    rec = Recorder(tmp_path / "d.sock", handler)
    try:
        env = dict(os.environ, SKIFF_HOST=f"unix://{tmp_path}/d.sock")
        r = skiff("ps", env=env)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].split("   ")[0] == "CONTAINER ID"
        assert lines[1].startswith('ffffffffffff   busybox   "sleep 300"')
        assert lines[1].endswith("Up 2 minutes             web")
        # the negotiated version (daemon's, lower than ours) prefixes the path
        assert rec.requests[-1].path == "/v1.45/containers/json"
        assert skiff("ps", "-q", env=env).stdout == "ffffffffffff\n"
    finally:
        rec.close()


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("run",), 1),
        (("run", "--bogus", "x"), 125),
        (("nosuchverb",), 1),
        (("run", "-p", "99999:80", "busybox"), 125),
    ],
)
def test_exit_codes_without_daemon(args: tuple[str, ...], code: int, tmp_path: Path) -> None:
    r = skiff("-H", f"unix://{tmp_path}/none.sock", *args)
    assert r.returncode == code
    assert r.stderr.count("\n") == 1


def test_version_text_fast_path_equals_its_template() -> None:
    from skiff.cli.gotemplate import Template
    from skiff.cli.system import VERSION_TEMPLATE, _version_text

    data = {
        "Client": {
            "Version": "0.1.0",
            "ApiVersion": "1.41",
            "DefaultAPIVersion": "1.47",
            "PythonVersion": "3.11.2",
            "Os": "linux",
            "Arch": "amd64",
        },
        "Server": {
            "Components": [
                {
                    "Name": "Engine",
                    "Version": "20.10",
                    "Details": {"API version": "1.41", "Experimental": False},
                },
                {"Name": "runc", "Version": "1.1.5", "Details": {"GitCommit": "abc"}},
            ]
        },
        "ServerOK": True,
    }
    assert _version_text(data) == Template(VERSION_TEMPLATE).render(data)
    data["ServerOK"] = False
    data["Client"]["ApiVersion"] = "1.47"
    assert _version_text(data) == Template(VERSION_TEMPLATE).render(data)
