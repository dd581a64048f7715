"""`skiff registry serve|gc` hands its arguments to skiff's registry server."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path


def test_registry_serve_answers_v2_and_gc_runs(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skiff.cli.main",
            "registry",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--root",
            str(root),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line
        url = line.split("listening on ", 1)[1].strip()
        with urllib.request.urlopen(f"{url}/v2/", timeout=10) as resp:
            assert resp.status == 200
    finally:
        proc.terminate()
        proc.wait(10)
    gc = subprocess.run(
        [
            sys.executable,
            "-m",
            "skiff.cli.main",
            "registry",
            "gc",
            "--root",
            str(root),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gc.returncode == 0, gc.stderr
