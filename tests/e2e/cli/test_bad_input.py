"""Bad input: one-line errors, docker's exit codes, and nothing created."""

from __future__ import annotations

from .conftest import Daemon


def _containers(d: Daemon) -> str:
    return d.docker("ps", "-aq", "--no-trunc").out


def test_unknown_flag_is_125_and_creates_nothing(daemon: Daemon, name: str) -> None:
    before = _containers(daemon)
    r = daemon.skiff("run", "--no-such-flag", "--name", name, "busybox", "true")
    assert r.code == daemon.docker("run", "--no-such-flag", "busybox", "true").code == 125
    assert r.err.count("\n") == 1 and "unknown flag: --no-such-flag" in r.err
    assert r.out == ""
    assert _containers(daemon) == before


def test_bad_port_spec_is_125_and_creates_nothing(daemon: Daemon, name: str) -> None:
    before = _containers(daemon)
    for spec in ("99999:80", "80:abc", "1.2.3.999:80:80", "80/xyz"):
        r = daemon.skiff("run", "-p", spec, "--name", name, "busybox", "true")
        k = daemon.docker("run", "-p", spec, "busybox", "true")
        assert r.code == k.code == 125, spec
        assert r.err.count("\n") == 1, r.err
    assert "invalid hostPort: 99999" in daemon.skiff("run", "-p", "99999:80", "busybox").err
    assert _containers(daemon) == before


def test_missing_image_is_125_and_creates_nothing(daemon: Daemon, name: str) -> None:
    before = _containers(daemon)
    image = "127.0.0.1:9/nosuch/image:none"  # a closed loopback port: fails fast, offline
    r = daemon.skiff("run", "--name", name, image, "true", timeout=120)
    k = daemon.docker("run", image, "true", timeout=120)
    assert r.code == k.code == 125
    lines = r.err.splitlines()
    assert lines[0] == f"Unable to find image '{image}' locally"
    assert len(lines) == 2 and lines[1].startswith("skiff: ")
    assert _containers(daemon) == before
    r = daemon.skiff("run", "--pull", "never", image)
    assert r.code == 125 and r.err.count("\n") == 1


def test_wrong_argument_counts_and_unknown_verbs(daemon: Daemon) -> None:
    for args in (("run",), ("stop",), ("rename", "a")):
        r, k = daemon.skiff(*args), daemon.docker(*args)
        assert r.code == k.code == 1, args
        assert r.err.count("\n") == 1
    assert daemon.skiff("nosuchverb").code == 1
    assert daemon.skiff("ps", "--bogus").code == daemon.docker("ps", "--bogus").code == 125
    assert daemon.skiff("run", "-m", "lots", "busybox").code == 125


def test_daemon_not_running_message(daemon: Daemon) -> None:
    r = daemon.skiff("-H", f"unix://{daemon.root}/absent.sock", "ps")
    assert r.code == 1
    assert r.err == (
        f"Cannot connect to skiffd at unix://{daemon.root}/absent.sock: is it running? "
        "start it with `skiffd` or `make demo`\n"
    )
