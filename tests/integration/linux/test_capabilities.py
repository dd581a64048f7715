"""skiff.linux.capabilities on the real kernel: a child applies a reduced set, then busybox
finds mknod and chown refused (or allowed, through the ambient set, for a non-root user)."""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from skiff.linux import capabilities


def _load_nsutil() -> ModuleType:
    path = Path(__file__).parents[1] / "runtime" / "_nsutil.py"
    spec = importlib.util.spec_from_file_location("_nsutil", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ns = _load_nsutil()
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
PR_SET_KEEPCAPS = 8
DOCKER_DEFAULT = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory any uid can enter (tmp_path is root-only)."""
    d = Path(tempfile.mkdtemp(prefix="skiff-caps-"))
    os.chmod(d, 0o777)
    try:
        yield d
    finally:
        shutil.rmtree(d)


def run(workdir: Path, caps: dict[str, list[str]], script: str, *, uid: int = 0) -> tuple[int, str]:
    def child() -> None:
        if uid:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        capabilities.apply(caps)
        os.chdir(workdir)
        os.execv(BUSYBOX, ["sh", "-c", script])

    return ns.run_in_namespaces(child, ns.CLONE_NEWNS)  # type: ignore[no-any-return]


SCRIPT = (
    "touch owned; "
    "if mknod node c 1 3 2>/dev/null; then echo mknod=ok; else echo mknod=refused; fi; "
    "if chown 1234 owned 2>/dev/null; then echo chown=ok; else echo chown=refused; fi; "
    "grep ^Cap /proc/self/status"
)


def without(*names: str) -> list[str]:
    return [c for c in DOCKER_DEFAULT if c not in names]


def test_reduced_set_refuses_mknod_and_chown(workdir: Path) -> None:
    reduced = without("CAP_MKNOD", "CAP_CHOWN")
    sets = {"bounding": reduced, "effective": reduced, "permitted": reduced}
    code, output = run(workdir, sets, SCRIPT)
    assert code == 0, output
    assert "mknod=refused" in output and "chown=refused" in output
    bnd = next(line for line in output.splitlines() if line.startswith("CapBnd"))
    assert capabilities.names(int(bnd.split()[1], 16)) == sorted(
        reduced, key=capabilities.parse_cap
    )


def test_docker_default_set_allows_them(workdir: Path) -> None:
    sets = {"bounding": DOCKER_DEFAULT, "effective": DOCKER_DEFAULT, "permitted": DOCKER_DEFAULT}
    code, output = run(workdir, sets, SCRIPT)
    assert code == 0, output
    assert "mknod=ok" in output and "chown=ok" in output


def test_non_root_gets_ambient_caps(workdir: Path) -> None:
    chown = ["CAP_CHOWN"]
    sets = {
        "bounding": DOCKER_DEFAULT,
        "effective": chown,
        "permitted": chown,
        "inheritable": chown,
        "ambient": chown,
    }
    code, output = run(workdir, sets, SCRIPT, uid=65534)
    assert code == 0, output
    assert "chown=ok" in output and "mknod=refused" in output
    amb = next(line for line in output.splitlines() if line.startswith("CapAmb"))
    assert capabilities.names(int(amb.split()[1], 16)) == ["CAP_CHOWN"]


def test_non_root_without_ambient_has_nothing(workdir: Path) -> None:
    sets = {"bounding": DOCKER_DEFAULT, "effective": DOCKER_DEFAULT, "permitted": DOCKER_DEFAULT}
    code, output = run(workdir, sets, SCRIPT, uid=65534)
    assert code == 0, output
    assert "chown=refused" in output
    eff = next(line for line in output.splitlines() if line.startswith("CapEff"))
    assert int(eff.split()[1], 16) == 0
