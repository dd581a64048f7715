"""The builder on the real kernel: an ImageStore in a temp dir, RUN steps through the OCI runtime
(skiff-runtime, else runc), and checks of what the images hold and what is left behind."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import shutil
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skiff.build.builder import BuildError, BuildOptions, build, remove_stale
from skiff.errors import InvalidArgument, NotFound, SkiffError


def _runtime() -> str:
    own = Path(sys.executable).with_name("skiff-runtime")
    if own.exists():
        return str(own)
    found = shutil.which("runc")
    if not found:
        pytest.skip("no OCI runtime (skiff-runtime or runc)")
    return found


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs: Path) -> Iterator[dict[str, Any]]:
    from skiff.images.store import ImageStore

    root = Path(f"/tmp/skiff-build-it-{uuid.uuid4().hex[:8]}")
    root.mkdir()
    try:
        store = ImageStore(root / "data")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for entry in sorted(busybox_rootfs.iterdir()):
                tar.add(entry, arcname=entry.name)
        buf.seek(0)
        store.import_rootfs(buf, "busybox:latest", ['CMD ["sh"]'])
        yield {"store": store, "root": root, "runtime": _runtime()}
    finally:
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for m in sorted((m for m in mounts if m.startswith(str(root))), key=len, reverse=True):
            os.system(f"umount -l '{m}'")
        shutil.rmtree(root, ignore_errors=True)


class Run:
    def __init__(self, env: dict[str, Any], ctx: Path) -> None:
        self.env = env
        self.ctx = ctx
        self.out: list[str] = []

    def __call__(self, dockerfile: str | None = None, **kw: Any) -> str:
        if dockerfile is not None:
            (self.ctx / "Dockerfile").write_text(dockerfile)
        self.out = []
        root = self.env["root"]
        opts = BuildOptions(
            images=self.env["store"],
            state_dir=root / "data" / "build",
            run_dir=root / "run",
            runtime=self.env["runtime"],
            runtime_root=str(root / "runtime"),
            **kw,
        )

        def emit(msg: dict[str, Any]) -> None:
            if "stream" in msg:
                self.out.append(msg["stream"])

        return build(self.ctx, opts, emit)

    @property
    def text(self) -> str:
        return "".join(self.out)

    def rootfs_file(self, image: str, path: str) -> bytes:
        store = self.env["store"]
        rec = store.resolve(image)
        for chain in reversed(rec.chain_ids):
            p = store.snapshots.upper_path(str(chain)) / path.lstrip("/")
            if os.path.lexists(p):
                return p.read_bytes() if not p.is_symlink() else os.readlink(p).encode()
        raise FileNotFoundError(path)

    def lstat(self, image: str, path: str) -> os.stat_result:
        store = self.env["store"]
        rec = store.resolve(image)
        for chain in reversed(rec.chain_ids):
            p = store.snapshots.upper_path(str(chain)) / path.lstrip("/")
            if os.path.lexists(p):
                return os.lstat(p)
        raise FileNotFoundError(path)


@pytest.fixture
def run(env: dict[str, Any], tmp_path: Path) -> Run:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    return Run(env, ctx)


def _nothing_left(env: dict[str, Any]) -> None:
    root = env["root"]
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    assert not [m for m in mounts if m.startswith(str(root / "run"))]
    names = [i.name for i in env["store"].snapshots.walk()]
    assert not [n for n in names if n.startswith("build-")], names
    rt = root / "runtime"
    assert not rt.exists() or not list(rt.iterdir())


def test_copy_add_chown_chmod_and_archives(run: Run) -> None:
    (run.ctx / "dir" / "sub").mkdir(parents=True)
    (run.ctx / "dir" / "sub" / "f.txt").write_text("f")
    (run.ctx / "dir" / "x.sh").write_text("#!/bin/sh\n")
    os.chmod(run.ctx / "dir" / "x.sh", 0o751)
    with tarfile.open(run.ctx / "a.tar.xz", "w:xz") as tar:
        ti = tarfile.TarInfo("inner/t.txt")
        ti.size, ti.uid, ti.gid = 2, 5, 6
        tar.addfile(ti, io.BytesIO(b"tt"))
    image = run(
        "FROM busybox\n"
        "COPY dir /d/\n"
        "COPY --chown=nobody dir/sub/f.txt /owned\n"
        "COPY --link --chmod=0600 dir/x.sh /x.sh\n"
        "ADD a.tar.xz /ex/\n"
        "COPY a.tar.xz /not-extracted/\n"
        "COPY <<EOF /here.txt\nheredoc $HOME\nEOF\n"
    )
    assert run.rootfs_file(image, "/d/sub/f.txt") == b"f"
    assert run.lstat(image, "/d/x.sh").st_mode & 0o7777 == 0o751
    st = run.lstat(image, "/owned")
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert run.lstat(image, "/x.sh").st_mode & 0o7777 == 0o600
    st = run.lstat(image, "/ex/inner/t.txt")
    assert (st.st_uid, st.st_gid) == (5, 6) and run.rootfs_file(image, "/ex/inner/t.txt") == b"tt"
    assert run.rootfs_file(image, "/not-extracted/a.tar.xz")[:6] == b"\xfd7zXZ\x00"
    assert run.rootfs_file(image, "/here.txt") == b"heredoc $HOME\n"


def test_symlinks_never_leave_the_context(run: Run) -> None:
    (run.ctx / "tree").mkdir()
    os.symlink("/etc/shadow", run.ctx / "tree" / "out-link")
    os.symlink("/etc", run.ctx / "etc-link")
    image = run("FROM busybox\nCOPY tree /tree/\n")
    assert run.rootfs_file(image, "/tree/out-link") == b"/etc/shadow"  # copied as a symlink
    with pytest.raises(NotFound, match="etc-link/passwd"):
        run("FROM busybox\nCOPY etc-link/passwd /p\n")
    with pytest.raises(InvalidArgument, match=r"outside the build context: \.\./x"):
        run("FROM busybox\nCOPY ../x /x\n")


def test_add_url_from_loopback(run: Run, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "file.txt").write_text("from http\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    handler = lambda *a, **k: Quiet(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/file.txt"
        good = "sha256:" + hashlib.sha256(b"from http\n").hexdigest()
        image = run(f"FROM busybox\nADD --checksum={good} {url} /dl/\n")
        assert run.rootfs_file(image, "/dl/file.txt") == b"from http\n"
        assert run.lstat(image, "/dl/file.txt").st_mode & 0o777 == 0o600
        with pytest.raises(InvalidArgument, match="digest mismatch"):
            run(f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {url} /dl/\n")
    finally:
        server.shutdown()
        server.server_close()


def test_run_mounts_network_and_scratch(run: Run, env: dict[str, Any]) -> None:
    (run.ctx / "input.txt").write_text("bound")
    dockerfile = (
        "FROM busybox AS s\nRUN mkdir /stage && echo from-stage > /stage/f\n"
        "FROM busybox\n"
        "RUN --mount=type=tmpfs,target=/scratchpad touch /scratchpad/x && grep -c ' /scratchpad tmpfs' /proc/mounts\n"
        "RUN --mount=type=bind,source=input.txt,target=/in cat /in\n"
        "RUN --mount=type=bind,from=s,source=/stage,target=/st cat /st/f\n"
        "RUN --mount=type=cache,target=/cache,id=c1 echo $$ >> /cache/runs && wc -l < /cache/runs\n"
        "RUN echo default=$(ls /sys/class/net)\n"
        "RUN --network=none echo none=$(ls /sys/class/net)\n"
        "RUN --network=host echo host=$(ls /sys/class/net)\n"
    )
    image = run(dockerfile)
    text = run.text
    assert "bound" in text and "from-stage" in text
    assert "default=lo\n" in text and "none=lo\n" in text  # a private netns: only lo
    assert "host=lo\n" not in text and "host=" in text
    with pytest.raises(FileNotFoundError):
        run.rootfs_file(image, "/scratchpad")  # mount points are not left in the layer
    run(dockerfile, no_cache=True)
    assert "2\n" in run.text  # the cache mount persisted between builds
    scratch = run("FROM scratch\nCOPY input.txt /\nENV A=1\n")
    assert env["store"].inspect(scratch)["RootFS"]["Layers"].__len__() == 1
    _nothing_left(env)


def test_failures_name_the_problem_and_leave_nothing(run: Run, env: dict[str, Any]) -> None:
    with pytest.raises(BuildError) as info:
        run("FROM busybox\nRUN echo partial > /partial && exit 5\n")
    assert (
        info.value.message
        == "The command '/bin/sh -c echo partial > /partial && exit 5' returned a non-zero code: 5"
    )
    assert info.value.code == 5
    with pytest.raises(NotFound, match=r"stat nothere\.txt: file does not exist"):
        run("FROM busybox\nCOPY nothere.txt /\n")
    with pytest.raises(InvalidArgument, match="line 2: unknown instruction: FROBNICATE"):
        run("FROM busybox\nFROBNICATE\n")
    with pytest.raises(InvalidArgument, match="platform 'linux/arm64' is not supported"):
        run("FROM --platform=linux/arm64 busybox\n")
    with pytest.raises(NotFound, match="not present locally"):
        run("FROM no-such-image:1\n")
    with pytest.raises(InvalidArgument, match="unable to find user ghost"):
        run("FROM busybox\nUSER ghost\nRUN true\n")
    with pytest.raises(InvalidArgument, match="failed to reach build target"):
        run("FROM busybox AS a\n", target="b")
    _nothing_left(env)


@pytest.mark.parametrize("when", ["Step 2/2", "go\n"], ids=["while-creating", "while-running"])
def test_cancel_kills_the_step_and_cleans_up(
    env: dict[str, Any], tmp_path: Path, when: str
) -> None:
    ctx = tmp_path / "c"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo go && sleep 60\n")
    root = env["root"]
    seen = threading.Event()

    def emit(msg: dict[str, Any]) -> None:
        if msg.get("stream", "").startswith(when):
            seen.set()

    opts = BuildOptions(
        images=env["store"],
        state_dir=root / "data" / "build",
        run_dir=root / "run",
        runtime=env["runtime"],
        runtime_root=str(root / "runtime"),
        no_cache=True,
    )
    started = time.monotonic()
    with pytest.raises(SkiffError, match="cancelled"):
        build(ctx, opts, emit, cancelled=seen.is_set)
    assert time.monotonic() - started < 10
    _nothing_left(env)


def test_quiet_labels_args_and_tags(run: Run, env: dict[str, Any]) -> None:
    image = run(
        "ARG BASE=busybox\nFROM $BASE\nARG TARGETARCH\nARG UNSET_ONE\nRUN echo arch=$TARGETARCH\n",
        quiet=True,
        labels={"k": "v"},
        tags=["built:one", "built:two"],
        build_args={"UNUSED": "x", "HTTP_PROXY": "http://proxy.invalid"},
    )
    assert run.text == image + "\n"  # -q: only the id
    store = env["store"]
    rec = store.resolve("built:two")
    assert rec.id == image and store.resolve("built:one").id == image
    assert rec.config["config"]["Labels"] == {"k": "v"}
    history = " ".join(h.get("created_by", "") for h in rec.config["history"])
    assert "proxy.invalid" not in history and "HTTP_PROXY" not in str(rec.config["config"])
    run("FROM busybox\nARG TARGETARCH\nRUN echo arch=$TARGETARCH\n", build_args={"UNUSED": "x"})
    assert "arch=amd64" in run.text
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in run.text


def test_remove_stale_after_a_crash(env: dict[str, Any]) -> None:
    from skiff.linux.mount import mount_all

    store = env["store"]
    run_dir = env["root"] / "run-crashed"
    key = f"build-{uuid.uuid4().hex}"
    mounts = store.snapshots.prepare(key, str(store.resolve("busybox:latest").chain_ids[-1]))
    target = run_dir / "rootfs" / key
    target.mkdir(parents=True)
    mount_all(mounts, str(target))
    assert remove_stale(store, run_dir) == [key]
    assert not run_dir.exists()
    assert key not in [i.name for i in store.snapshots.walk()]
    assert str(target) not in Path("/proc/self/mountinfo").read_text()
