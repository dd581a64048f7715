"""The build e2e tests reuse the CLI tests' daemons (Debian's dockerd and skiffd, each with its
own roots and socket and a busybox:latest imported from the busybox rootfs fixture)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "skiff_test_e2e_cli_daemons"
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        _NAME, Path(__file__).resolve().parents[1] / "cli" / "conftest.py"
    )
    assert _spec and _spec.loader
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _mod
    _spec.loader.exec_module(_mod)

_daemons = sys.modules[_NAME]
Daemon = _daemons.Daemon
busybox_tar = _daemons.busybox_tar
daemon = _daemons.daemon
name = _daemons.name
