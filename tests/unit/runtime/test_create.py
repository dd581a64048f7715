"""create: which configs the pre-init (pid 1 of a new pid namespace, forked early) can serve."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.runtime.create import pre_init_suits


def spec(*namespaces: dict[str, Any]) -> dict[str, Any]:
    return {"linux": {"namespaces": list(namespaces)}}


@pytest.mark.parametrize(
    ("config", "suits"),
    [
        (spec({"type": "pid"}, {"type": "mount"}, {"type": "network"}), True),
        (spec({"type": "pid"}, {"type": "cgroup"}, {"type": "network", "path": "/x"}), True),
        (spec({"type": "mount"}), False),  # the host's pid namespace
        (spec({"type": "pid", "path": "/proc/7/ns/pid"}), False),  # a joined one
        (spec({"type": "pid"}, {"type": "user"}), False),  # must own the pid namespace
        (spec({"type": "pid"}, {"type": "time"}), False),  # entered by children only
        ({"linux": {}}, False),
        ({}, False),
    ],
)
def test_pre_init_suits(config: dict[str, Any], suits: bool) -> None:
    assert pre_init_suits(config) is suits
