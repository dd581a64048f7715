"""Intermediate images of a legacy build, against Debian's dockerd and skiffd alike: hidden from
`docker images` (shown with -a), recorded as `Parent`, never dangling, and removed with the last
image that builds on them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

DOCKER_CLI = shutil.which("docker") or "/usr/local/bin/docker"

DOCKERFILE = """\
FROM busybox
LABEL skiff.test={name}
RUN echo one > /one
ENV STEP=two
RUN echo three > /three
"""


def inspect(d: Any, ref: str) -> dict[str, Any]:
    r = d.docker("image", "inspect", ref)
    assert r.code == 0, r.err
    return dict(json.loads(r.out)[0])


def _ids(d: Any, *args: str) -> list[str]:
    r = d.docker("images", "--no-trunc", "-q", *args)
    assert r.code == 0, r.err
    return sorted(set(r.out.split()))


def _build(d: Any, ctx: Path, tag: str) -> str:
    env = dict(d.env, DOCKER_BUILDKIT="0")
    r = subprocess.run(
        [DOCKER_CLI, "build", "--no-cache", "-q", "-t", tag, str(ctx)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr + r.stdout
    return r.stdout.strip().splitlines()[-1]


def test_intermediate_images_are_parents(daemon: Any, tmp_path: Path, name: str) -> None:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE.format(name=name))
    ctx = tmp_path
    base = inspect(daemon, "busybox")["Id"]
    final = _build(daemon, ctx, name)
    try:
        # The Parent chain: final -> 3 step images (LABEL, RUN, ENV) -> busybox.
        chain = []
        cur = inspect(daemon, final)
        while cur["Parent"] and cur["Parent"] != base:
            chain.append(cur["Parent"])
            cur = inspect(daemon, cur["Parent"])
        assert cur["Parent"] == base, "the first step's parent is the FROM image"
        assert len(chain) == 3, chain

        listed = _ids(daemon)
        assert final in listed and base in listed
        assert not set(chain) & set(listed), "intermediate images are hidden without -a"
        assert set(chain) <= set(_ids(daemon, "-a"))
        assert not set(chain) & set(_ids(daemon, "-f", "dangling=true"))

        # A dangling image of this test's own (an older build whose tag moved) goes; the
        # parents of the tagged image stay. The label keeps other tests' images out of it.
        older = final
        final = _build(daemon, ctx, name)
        assert older in _ids(daemon, "-f", "dangling=true")
        old_parent = inspect(daemon, older)["Parent"]
        chain = []
        cur = inspect(daemon, final)
        while cur["Parent"] != base:
            chain.append(cur["Parent"])
            cur = inspect(daemon, cur["Parent"])
        r = daemon.docker("image", "prune", "-f", "--filter", f"label=skiff.test={name}")
        assert r.code == 0, r.err
        assert older in r.out and old_parent in r.out, r.out
        assert older not in _ids(daemon, "-a") and old_parent not in _ids(daemon, "-a")
        assert set(chain) <= set(_ids(daemon, "-a")), "prune keeps parents of tagged images"

        # An intermediate image with a child cannot be removed, even with -f.
        r = daemon.docker("rmi", "-f", chain[0])
        assert r.code != 0 and "dependent child images" in r.err, r.err

        r = daemon.docker("rmi", name)
        assert r.code == 0, r.err
        deleted = [
            line.split(": ", 1)[1]
            for line in r.out.splitlines()
            if line.startswith("Deleted: ") and line.split(": ", 1)[1] in [final, *chain]
        ]
        assert deleted == [final, *chain], r.out
        assert not set([final, *chain]) & set(_ids(daemon, "-a"))
        assert base in _ids(daemon)
    finally:
        daemon.docker("rmi", "-f", name)
        daemon.docker("image", "prune", "-f", "--filter", f"label=skiff.test={name}")
