"""skiffd's runtime calls for skiff-runtime go through the runtime's library, in-process:
each verb reaches the right lifecycle function, and failures look like the command's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skiff.engine import containers
from skiff.errors import FailedPrecondition, NotFound
from skiff.runtime import lifecycle


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    seen: list[tuple[Any, ...]] = []

    def record(name: str) -> Any:
        def fn(*args: Any, **kw: Any) -> None:
            seen.append((name, *args, *sorted(kw.items())))

        return fn

    for name in ("start", "kill", "delete", "pause", "resume"):
        monkeypatch.setattr(lifecycle, name, record(name))
    return seen


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (["start", "c1"], ("start", "/r", "c1")),
        (["kill", "c1", "KILL"], ("kill", "/r", "c1", "KILL", ("all_processes", False))),
        (["kill", "--all", "c1", "9"], ("kill", "/r", "c1", "9", ("all_processes", True))),
        (["kill", "c1"], ("kill", "/r", "c1", "SIGTERM", ("all_processes", False))),
        (["delete", "--force", "c1"], ("delete", "/r", "c1", ("force", True))),
        (["delete", "c1"], ("delete", "/r", "c1", ("force", False))),
        (["pause", "c1"], ("pause", "/r", "c1")),
        (["resume", "c1"], ("resume", "/r", "c1")),
    ],
)
def test_each_verb_reaches_its_lifecycle_function(
    calls: list[tuple[Any, ...]], args: list[str], want: tuple[Any, ...]
) -> None:
    res = containers.run_in_process("/r", ["skiff-runtime", "--root", "/r", *args], args)
    assert res.returncode == 0 and res.stderr == b""
    assert calls == [want]


def test_failures_become_status_1_and_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: Any, **__: Any) -> None:
        raise FailedPrecondition("cannot start a container that has stopped")

    monkeypatch.setattr(lifecycle, "start", fail)
    res = containers.run_in_process("/r", ["x"], ["start", "c1"])
    assert (res.returncode, res.stderr) == (1, b"cannot start a container that has stopped\n")


def test_a_missing_container_fails_like_the_cli(tmp_path: Path) -> None:
    res = containers.run_in_process(str(tmp_path), ["x"], ["kill", "nope", "KILL"])
    assert res.returncode == 1
    assert res.stderr.decode().strip() == str(NotFound('container "nope" does not exist'))
    # delete --force of an unknown container succeeds, as `skiff-runtime delete --force`
    assert (
        containers.run_in_process(str(tmp_path), ["x"], ["delete", "--force", "nope"]).returncode
        == 0
    )


def test_only_skiff_runtime_is_run_in_process(tmp_path: Path) -> None:
    exe = tmp_path / "skiff-runtime"
    exe.write_text("")
    link = tmp_path / "my-runtime"
    link.symlink_to(exe)
    assert containers.is_skiff_runtime(str(exe))
    assert containers.is_skiff_runtime(str(link))
    assert not containers.is_skiff_runtime("/usr/sbin/runc")
    assert "create" not in containers.IN_PROCESS_VERBS and "exec" not in containers.IN_PROCESS_VERBS
