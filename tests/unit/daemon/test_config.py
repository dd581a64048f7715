"""skiffd's flags and config file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skiff.daemon.main import load_config, parse_args
from skiff.errors import InvalidArgument


def test_defaults_like_dockerd() -> None:
    cfg = load_config(parse_args([]))
    assert cfg["hosts"] == ["unix:///run/skiff/skiff.sock"]
    assert str(cfg["data_root"]) == "/var/lib/skiff" and str(cfg["exec_root"]) == "/run/skiff"
    assert cfg["default_runtime"] == "skiff-runtime"


def test_flags_override_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "daemon.json"
    conf.write_text(
        json.dumps(
            {
                "data-root": "/srv/a",
                "hosts": ["unix:///tmp/x.sock"],
                "runtimes": {"crun": {"path": "/usr/bin/crun"}},
                "debug": True,
            }
        )
    )
    cfg = load_config(
        parse_args(
            [
                "--config-file",
                str(conf),
                "--data-root",
                "/srv/b",
                "--add-runtime",
                "other=/bin/other",
            ]
        )
    )
    assert str(cfg["data_root"]) == "/srv/b"
    assert cfg["hosts"] == ["unix:///tmp/x.sock"]
    assert cfg["runtimes"]["crun"] == "/usr/bin/crun" and cfg["runtimes"]["other"] == "/bin/other"
    assert cfg["log_level"] == "debug"


def test_bad_runtime_spec() -> None:
    with pytest.raises(InvalidArgument, match="expected name=path"):
        load_config(parse_args(["--add-runtime", "nopath"]))


def test_tcp_requires_mutual_tls() -> None:
    from skiff.daemon.main import check_hosts

    cfg = load_config(parse_args(["-H", "tcp://127.0.0.1:0"]))
    with pytest.raises(InvalidArgument, match="requires --tlsverify"):
        check_hosts(cfg)
    with pytest.raises(InvalidArgument, match="invalid --host"):
        check_hosts(load_config(parse_args(["-H", "ftp://x"])))
