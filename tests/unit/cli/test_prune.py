"""The prune verbs (prompt, request and report, byte for byte, against a scripted client) and
the apply-to-each-name loop the removal verbs share."""

from __future__ import annotations

import io
from types import ModuleType
from typing import Any

import pytest

from skiff.cli import containers, images, networks, system, volumes

ANSWERS: dict[str, Any] = {
    "/containers/prune": {"ContainersDeleted": ["c1", "c2"], "SpaceReclaimed": 2048},
    "/images/prune": {
        "ImagesDeleted": [{"Untagged": "busybox:latest"}, {"Deleted": "sha256:ab"}],
        "SpaceReclaimed": 1 << 20,
    },
    "/networks/prune": {"NetworksDeleted": ["n1"]},
    "/volumes/prune": {"VolumesDeleted": ["v1"], "SpaceReclaimed": 10},
}


class ScriptedClient:
    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []

    def post_json(self, path: str, params: Any = None) -> Any:
        self.posts.append((path, params))
        return ANSWERS[path]


class Ctx:
    def __init__(self) -> None:
        self.client = ScriptedClient()


def _prune(
    module: ModuleType, argv: list[str], answer: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> tuple[str, ScriptedClient]:
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    ctx = Ctx()
    assert module.prune(ctx, argv) == 0
    return capsys.readouterr().out, ctx.client


IMAGES_REPORT = "Deleted Images:\nuntagged: busybox:latest\ndeleted: sha256:ab\n\n"


@pytest.mark.parametrize(
    ("module", "argv", "posts", "out"),
    [
        (
            containers,
            ["-f", "--filter", "until=1h"],
            [("/containers/prune", {"filters": {"until": {"1h": True}}})],
            "Deleted Containers:\nc1\nc2\n\nTotal reclaimed space: 2.048kB\n",
        ),
        (
            images,
            ["-af"],
            [("/images/prune", {"filters": {"dangling": {"false": True}}})],
            IMAGES_REPORT + "Total reclaimed space: 1.049MB\n",
        ),
        (
            networks,
            ["-f"],
            [("/networks/prune", {"filters": None})],
            "Deleted Networks:\nn1\n",
        ),
        (
            volumes,
            ["-af"],
            [("/volumes/prune", {"filters": {"all": {"true": True}}})],
            "Deleted Volumes:\nv1\n\nTotal reclaimed space: 10B\n",
        ),
        (
            system,
            ["-f", "--volumes"],
            [
                ("/containers/prune", {"filters": None}),
                ("/networks/prune", {"filters": None}),
                ("/volumes/prune", {"filters": None}),
                ("/images/prune", {"filters": {"dangling": {"true": True}}}),
            ],
            "Deleted Containers:\nc1\nc2\n\nDeleted Networks:\nn1\n\nDeleted Volumes:\nv1\n\n"
            + IMAGES_REPORT
            + "Total reclaimed space: 1.051MB\n",
        ),
    ],
)
def test_forced_prune_posts_and_reports(
    module: ModuleType,
    argv: list[str],
    posts: list[tuple[str, Any]],
    out: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    printed, client = _prune(module, argv, "", monkeypatch, capsys)
    assert client.posts == posts
    assert printed == out


def test_prune_asks_first_and_does_nothing_without_yes(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    printed, client = _prune(networks, [], "n\n", monkeypatch, capsys)
    assert client.posts == []
    assert printed == (
        "WARNING! This will remove all custom networks not used by at least one container.\n"
        "Are you sure you want to continue? [y/N] "
    )
    printed, client = _prune(system, ["-a"], "yes\n", monkeypatch, capsys)
    assert [path for path, _ in client.posts][-1] == "/images/prune"
    assert printed.startswith(
        "WARNING! This will remove:\n  - all stopped containers\n"
        "  - all networks not used by at least one container\n"
        "  - all images without at least one container associated to them\n"
        "\nAre you sure you want to continue? [y/N] Deleted Containers:\n"
    )


def test_for_each_echoes_successes_and_reports_failures_together(capsys: Any) -> None:
    from skiff.cli.main import ExitStatus, for_each
    from skiff.errors import NotFound

    def act(name: str) -> None:
        if name.startswith("missing"):
            raise NotFound(f"No such network: {name}")

    with pytest.raises(ExitStatus) as failed:
        for_each(["a", "missing1", "b", "missing2"], act)
    assert capsys.readouterr().out == "a\nb\n"
    assert (failed.value.code, failed.value.message) == (
        1,
        "No such network: missing1\nNo such network: missing2",
    )
    skipped = for_each(["a", "missing1"], act, skip=lambda err: "No such" in str(err))
    assert skipped == 0 and capsys.readouterr().out == "a\n"
    assert for_each(["a"], act, echo=False) == 0 and capsys.readouterr().out == ""
