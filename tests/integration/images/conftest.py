from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.types.mount import Mount

_spec = importlib.util.spec_from_file_location(
    "skiff_test_threelayer", Path(__file__).with_name("threelayer.py")
)
assert _spec and _spec.loader
threelayer = importlib.util.module_from_spec(_spec)
sys.modules["skiff_test_threelayer"] = threelayer
_spec.loader.exec_module(threelayer)


@pytest.fixture(scope="session")
def three_layers(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return threelayer.build_layers(tmp_path_factory.mktemp("threelayer"))


class Mounter:
    """Performs snapshotter mounts (as the engine will) and undoes them, even on failure."""

    def __init__(self) -> None:
        self.targets: list[Path] = []

    def mount(self, mounts: list[Mount], target: Path) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        for m in mounts:
            if m.type == "bind":
                subprocess.run(["mount", "--bind", m.source, str(target)], check=True)
                self.targets.append(target)
                if "ro" in m.options:
                    subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
            else:
                subprocess.run(
                    ["mount", "-t", m.type, m.source, "-o", ",".join(m.options), str(target)],
                    check=True,
                )
                self.targets.append(target)
        return target

    def umount(self, target: Path) -> None:
        if target in self.targets:
            subprocess.run(["umount", str(target)], check=True)
            self.targets.remove(target)

    def cleanup(self) -> None:
        for t in reversed(self.targets):
            subprocess.run(["umount", "-l", str(t)], check=False)
        self.targets.clear()


@pytest.fixture
def mounter() -> Iterator[Mounter]:
    m = Mounter()
    try:
        yield m
    finally:
        m.cleanup()
