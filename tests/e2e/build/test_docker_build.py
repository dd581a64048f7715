"""`DOCKER_BUILDKIT=0 docker build` and docker-py's images.build against skiffd, and the same
Dockerfiles against Debian's dockerd (legacy builder): outputs, caches, file trees, configs."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

DOCKER_CLI = shutil.which("docker") or "/usr/local/bin/docker"

SKIFFD_ONLY = pytest.mark.parametrize("daemon", ["skiffd"], indirect=True)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def docker_build(
    d: Any, ctx: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = dict(d.env, DOCKER_BUILDKIT="0")
    return subprocess.run(
        [DOCKER_CLI, "build", *args, str(ctx)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def steps(output: str) -> list[tuple[str, bool]]:
    """(instruction, used cache?) for every step of a legacy build's output."""
    parts = re.split(r"^Step \d+/\d+ : ", output, flags=re.M)[1:]
    return [(p.splitlines()[0], " ---> Using cache" in p) for p in parts]


def inspect(d: Any, ref: str) -> dict[str, Any]:
    r = d.docker("image", "inspect", ref)
    assert r.code == 0, r.err
    return json.loads(r.out)[0]


CACHE_DOCKERFILE = """\
FROM busybox
RUN echo static
COPY a.txt /a.txt
RUN echo after-a
COPY b.txt /b.txt
ARG V=1
RUN echo v=$V
"""


def test_cache_hits_and_exact_invalidation(daemon: Any, tmp_path: Path, name: str) -> None:
    ctx = write(tmp_path, {"Dockerfile": CACHE_DOCKERFILE, "a.txt": "a\n", "b.txt": "b\n"})
    first = docker_build(daemon, ctx, "-t", name)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "v=1" in first.stdout
    assert re.search(r"^Successfully built [0-9a-f]{12}$", first.stdout, re.M)
    assert f"Successfully tagged {name}:latest" in first.stdout
    again = docker_build(daemon, ctx, "-t", name)
    assert [c for _, c in steps(again.stdout)] == [False] + [True] * 6, again.stdout
    # editing b.txt invalidates its COPY and what follows, nothing before
    (ctx / "b.txt").write_text("b2\n")
    edited = docker_build(daemon, ctx, "-t", name)
    assert [c for _, c in steps(edited.stdout)] == [False, True, True, True, False, False, False]
    # a new mtime alone is not a change
    os.utime(ctx / "a.txt", (1, 1))
    touched = docker_build(daemon, ctx, "-t", name)
    assert [c for _, c in steps(touched.stdout)] == [False] + [True] * 6, touched.stdout
    # a build arg used by the last RUN invalidates that RUN only (the ARG step itself is cached)
    arg = docker_build(daemon, ctx, "-t", name, "--build-arg", "V=2")
    assert [c for _, c in steps(arg.stdout)] == [False, True, True, True, True, True, False]
    assert "v=2" in arg.stdout
    nocache = docker_build(daemon, ctx, "--no-cache", "-t", name)
    assert not any(c for _, c in steps(nocache.stdout))


def test_user_workdir_onbuild_healthcheck(daemon: Any, tmp_path: Path, name: str) -> None:
    base = write(
        tmp_path / "base",
        {
            "Dockerfile": "FROM busybox\n"
            "ONBUILD RUN echo triggered > /trig\n"
            "HEALTHCHECK --interval=5s --timeout=3s --retries=4 CMD echo ok\n"
        },
    )
    r = docker_build(daemon, base, "-t", f"{name}-base")
    assert r.returncode == 0, r.stderr + r.stdout
    child = write(
        tmp_path / "child",
        {
            "Dockerfile": f"FROM {name}-base\n"
            "WORKDIR /app/sub\n"
            "USER nobody\n"
            "RUN id -u && pwd && cat /trig\n"
        },
    )
    r = docker_build(daemon, child, "-t", name)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "# Executing 1 build trigger" in r.stdout
    assert "65534\n/app/sub\ntriggered\n" in r.stdout
    cfg = inspect(daemon, name)["Config"]
    assert cfg["Healthcheck"] == {
        "Test": ["CMD-SHELL", "echo ok"],
        "Interval": 5_000_000_000,
        "Timeout": 3_000_000_000,
        "Retries": 4,
    }
    assert cfg["User"] == "nobody" and cfg["WorkingDir"] == "/app/sub"
    assert not cfg.get("OnBuild")
    assert inspect(daemon, f"{name}-base")["Config"]["OnBuild"] == ["RUN echo triggered > /trig"]


def test_dockerignore_and_target(daemon: Any, tmp_path: Path, name: str) -> None:
    ctx = write(
        tmp_path,
        {
            "Dockerfile": "FROM busybox AS one\nCOPY . /ctx/\nRUN find /ctx | sort\n"
            "FROM busybox\nRUN echo second-stage\n",
            ".dockerignore": "*.log\n!keep.log\nsecret\n**/*.tmp\n",
            "a.txt": "a",
            "x.log": "x",
            "keep.log": "k",
            "secret/s.txt": "s",
            "d/e.tmp": "t",
            "d/f.txt": "f",
        },
    )
    r = docker_build(daemon, ctx, "--target", "one", "-t", name)
    assert r.returncode == 0, r.stderr + r.stdout
    listing = [line for line in r.stdout.splitlines() if line.startswith("/ctx")]
    assert listing == [
        "/ctx",
        "/ctx/.dockerignore",
        "/ctx/Dockerfile",
        "/ctx/a.txt",
        "/ctx/d",
        "/ctx/d/f.txt",
        "/ctx/keep.log",
    ]
    assert "second-stage" not in r.stdout
    assert len(steps(r.stdout)) == 3


@SKIFFD_ONLY
def test_multistage_heredocs_and_expansion(daemon: Any, tmp_path: Path, name: str) -> None:
    dockerfile = """\
# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE} AS build
ARG WHO=world
ENV P=/opt/app
ENV Q=${P}/bin R=${UNSET:-dflt} S='$P' T="${WHO:+set}" P=/changed U=$P
RUN <<EOF
mkdir -p $Q
echo "hello $WHO" > $Q/greeting
EOF
COPY <<EOF /opt/app/note.txt
note for ${WHO}
EOF
RUN cat <<A > /opt/app/two && cat <<B >> /opt/app/two
first
A
second
B
FROM busybox
COPY --from=build /opt/app /app
RUN cat /app/bin/greeting /app/note.txt /app/two && echo "Q=$Q"
"""
    ctx = write(tmp_path, {"Dockerfile": dockerfile})
    r = docker_build(daemon, ctx, "--build-arg", "WHO=skiff", "-t", name)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "hello skiff\nnote for ${WHO}\nfirst\nsecond\nQ=\n" in r.stdout
    env = inspect(daemon, name)["Config"]["Env"]
    assert env == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    ids = re.findall(r"^ ---> ([0-9a-f]{12})$", r.stdout, re.M)  # FROM, ARG, ENV, ENV, …
    build_id = ids[3]
    stage_env = inspect(daemon, build_id)["Config"]["Env"]
    # one ENV line sees the values from before it (P in U is still /opt/app)
    assert stage_env[1:] == [
        "P=/changed",
        "Q=/opt/app/bin",
        "R=dflt",
        "S=$P",
        "T=set",
        "U=/opt/app",
    ]


@SKIFFD_ONLY
def test_bad_input_is_reported_and_leaves_nothing(daemon: Any, tmp_path: Path, name: str) -> None:
    cases = {
        "FROM busybox\nRUN true\nBOGUS x\n": "line 3: unknown instruction: BOGUS",
        "FROM busybox\nCOPY missing.txt /x\n": "missing.txt",
        "FROM busybox\nRUN echo partial > /p && exit 3\n": "The command '/bin/sh -c echo partial > /p && exit 3' returned a non-zero code: 3",
        "FROM busybox\nCOPY --from=nostage /x /y\n": "nostage",
        "FROM busybox\nENV\n": "line 2",
    }
    for text, message in cases.items():
        ctx = write(tmp_path / str(abs(hash(text))), {"Dockerfile": text})
        r = docker_build(daemon, ctx, "-t", name)
        assert r.returncode != 0
        assert message in r.stderr + r.stdout, (text, r.stderr, r.stdout)
    ctx = write(tmp_path / "target", {"Dockerfile": "FROM busybox AS a\nRUN true\n"})
    r = docker_build(daemon, ctx, "--target", "nope")
    assert r.returncode != 0 and "nope" in r.stderr
    _assert_nothing_left(daemon)


def _assert_nothing_left(d: Any) -> None:
    exec_root = d.root / "exec"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    assert not [m for m in mounts if m.startswith(str(exec_root / "build"))]
    bundles = exec_root / "build" / "bundles"
    assert not bundles.exists() or not list(bundles.iterdir())
    runtime_root = exec_root / "runtime"
    assert not runtime_root.exists() or not [p for p in runtime_root.iterdir() if len(p.name) >= 32]
    meta = list((d.root / "data" / "snapshots").glob("*/metadata.json")) + list(
        (d.root / "data" / "snapshots").glob("*/*.json")
    )
    for m in meta:
        assert '"build-' not in m.read_text(), f"a build snapshot is left in {m}"


@SKIFFD_ONLY
def test_docker_py_build(daemon: Any, tmp_path: Path, name: str) -> None:
    docker = pytest.importorskip("docker")
    ctx = write(
        tmp_path,
        {
            "Dockerfile": 'FROM busybox\nARG MSG\nRUN echo msg=$MSG\nLABEL from=dockerfile\nCMD ["sh"]\n'
        },
    )
    client = docker.DockerClient(base_url=daemon.host, version="1.47")
    try:
        image, logs = client.images.build(
            path=str(ctx),
            tag=f"{name}:py",
            buildargs={"MSG": "hi"},
            labels={"extra": "yes"},
            rm=True,
        )
        text = "".join(chunk.get("stream", "") for chunk in logs)
        assert "msg=hi" in text and "Successfully built" in text
        assert image.labels == {"from": "dockerfile", "extra": "yes"}
        assert f"{name}:py" in image.tags
        with pytest.raises(docker.errors.BuildError, match="returned a non-zero code: 7"):
            write(tmp_path, {"Dockerfile": "FROM busybox\nRUN exit 7\n"})
            client.images.build(path=str(ctx), tag=f"{name}:bad")
    finally:
        client.close()


@SKIFFD_ONLY
def test_client_disconnect_cancels_the_running_step(daemon: Any, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"FROM busybox\nRUN echo started && sleep 60\n"
        ti = tarfile.TarInfo("Dockerfile")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    body = buf.getvalue()
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(daemon.host.removeprefix("unix://"))
    sock.sendall(
        b"POST /v1.47/build?t=cancelme HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    seen = b""
    deadline = time.monotonic() + 30
    while b"started" not in seen and time.monotonic() < deadline:
        seen += sock.recv(65536)
    assert b"started" in seen, seen
    sock.close()
    deadline = time.monotonic() + 20
    while True:
        try:
            _assert_nothing_left(daemon)
            procs = subprocess.run(
                ["pgrep", "-f", "sleep 60"], capture_output=True, text=True
            ).stdout.split()
            assert not [p for p in procs if _in_exec_root(p, daemon)]
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    assert daemon.docker("image", "inspect", "cancelme").code != 0


def _in_exec_root(pid: str, d: Any) -> bool:
    try:
        return str(d.root) in Path(f"/proc/{pid}/mountinfo").read_text()
    except OSError:
        return False


# -- differential: the same Dockerfiles through dockerd's legacy builder and skiffd ----------

DIFF_FILES = {
    "Dockerfile": """\
FROM busybox AS build
ARG VERSION=1.2
ENV APP=/opt/app
WORKDIR $APP
COPY src/ ./src/
COPY --chown=nobody:nogroup owned.txt /owned/
ADD archive.tar.gz /unpacked/
RUN mkdir -p out && cp -r src out/ && echo "$VERSION" > out/version && ln -s version out/link \\
 && rm -f /etc/motd && chmod 0640 out/version
FROM busybox
LABEL org.example.a="1" b="two words"
COPY --from=build /opt/app/out /srv/
COPY --from=build /owned /owned
RUN echo 'app:x:1234:1234::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1234:' >> /etc/group && mkdir /data && chown app /data && rm /bin/vi
USER app
WORKDIR /data
EXPOSE 8080 53/udp
VOLUME ["/data", "/cache"]
ENV MODE=prod PATH=/srv:$PATH
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /srv/version"]
STOPSIGNAL SIGINT
""",
    "src/a.txt": "alpha\n",
    "src/nested/b.sh": "#!/bin/sh\necho b\n",
    "owned.txt": "mine\n",
    ".dockerignore": "*.swp\n",
    "src/junk.swp": "ignored\n",
}
_diff_results: dict[str, dict[str, Any]] = {}


def _tree(d: Any, ref: str) -> list[tuple[str, str, str, int, int, int, str]]:
    r = subprocess.run(
        [DOCKER_CLI, "create", ref], capture_output=True, text=True, env=d.env, timeout=60
    )
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        out = subprocess.run(
            [DOCKER_CLI, "export", cid], capture_output=True, env=d.env, timeout=60
        ).stdout
    finally:
        subprocess.run([DOCKER_CLI, "rm", "-f", cid], capture_output=True, env=d.env, timeout=60)
    skip = {"etc/hostname", "etc/hosts", "etc/resolv.conf", ".dockerenv", "etc/mtab"}
    rows = []
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        for ti in tar:
            n = ti.name.rstrip("/")
            if n in skip or n.startswith(("proc/", "sys/", "dev/")):
                continue
            rows.append((n, ti.type.decode(), oct(ti.mode), ti.uid, ti.gid, ti.size, ti.linkname))
    return sorted(rows)


def test_differential_against_dockerd(daemon: Any, tmp_path: Path, name: str) -> None:
    ctx = write(tmp_path, DIFF_FILES)
    with tarfile.open(ctx / "archive.tar.gz", "w:gz") as tar:
        for n, text in {"t/one.txt": "1\n", "t/two.txt": "22\n"}.items():
            ti = tarfile.TarInfo(n)
            ti.size = len(text)
            ti.mode = 0o600
            ti.uid, ti.gid = 7, 8
            tar.addfile(ti, io.BytesIO(text.encode()))
    r = docker_build(daemon, ctx, "-t", name, "--label", "via=cli")
    assert r.returncode == 0, r.stderr + r.stdout
    cfg = inspect(daemon, name)["Config"]
    keys = (
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "Labels",
        "ExposedPorts",
        "Volumes",
        "StopSignal",
    )
    result = {"config": {k: cfg.get(k) or None for k in keys}, "tree": _tree(daemon, name)}
    _diff_results[daemon.kind] = result
    other = "docker" if daemon.kind == "skiffd" else "skiffd"
    if other not in _diff_results:
        return  # the daemon that builds second compares
    theirs = _diff_results[other]
    assert result["config"] == theirs["config"]
    mine, ref = set(result["tree"]), set(theirs["tree"])
    assert sorted(mine - ref) == [] and sorted(ref - mine) == [], (
        sorted(mine - ref),
        sorted(ref - mine),
    )


def _serve(directory: Path) -> tuple[Any, str]:
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    def handler(*a: Any, **k: Any) -> Quiet:
        return Quiet(*a, directory=str(directory), **k)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _api_build(d: Any, query: str, body: bytes = b"") -> list[dict[str, Any]]:
    import http.client

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(d.host.removeprefix("unix://"))

    conn = UnixConnection("localhost", timeout=120)
    try:
        conn.request(
            "POST",
            f"/v1.47/build?{query}",
            body=body,
            headers={"Content-Type": "application/x-tar"},
        )
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@SKIFFD_ONLY
def test_cli_options_and_remote_contexts(daemon: Any, tmp_path: Path, name: str) -> None:
    ctx = write(
        tmp_path / "ctx",
        {
            "sub/Other.dockerfile": "FROM busybox\nRUN echo to-stderr >&2 && echo net=$(ls /sys/class/net | wc -l)\n",
            "Dockerfile": "FROM busybox\nRUN false\n",
        },
    )
    iid = tmp_path / "iid"
    r = docker_build(
        daemon,
        ctx,
        "-f",
        str(ctx / "sub" / "Other.dockerfile"),
        "-t",
        f"{name}:a",
        "-t",
        f"{name}:b",
        "--iidfile",
        str(iid),
        "--network",
        "host",
    )
    assert r.returncode == 0, r.stderr + r.stdout
    assert "\x1b[91mto-stderr\n\x1b[0m" in r.stdout
    assert "net=1\n" not in r.stdout  # the host's interfaces, not only lo
    assert f"Successfully tagged {name}:a\nSuccessfully tagged {name}:b\n" in r.stdout
    image_id = iid.read_text().strip()
    assert image_id.startswith("sha256:") and inspect(daemon, f"{name}:b")["Id"] == image_id
    q = docker_build(daemon, ctx, "-q", "-f", str(ctx / "sub" / "Other.dockerfile"))
    assert q.returncode == 0 and q.stdout.strip() == image_id  # fully cached, same image
    bad = docker_build(
        daemon, ctx, "--platform", "linux/arm64", "-f", str(ctx / "sub" / "Other.dockerfile")
    )
    assert bad.returncode != 0 and "linux/arm64" in bad.stderr and "not supported" in bad.stderr
    # a remote tar context over http (loopback), and a remote git repository
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / "ctx.tar.gz", "w:gz") as tar:
        data = b"FROM busybox\nCOPY hello /hello\nRUN cat /hello\n"
        for n, content in {"Dockerfile": data, "hello": b"remote tar context\n"}.items():
            ti = tarfile.TarInfo(n)
            ti.size = len(content)
            tar.addfile(ti, io.BytesIO(content))
    server, base = _serve(served)
    try:
        r = docker_build(daemon, f"{base}/ctx.tar.gz", "-t", f"{name}:remote")  # the CLI fetches
        assert r.returncode == 0 and "remote tar context" in r.stdout, r.stderr
        # through the API, skiffd fetches
        msgs = _api_build(daemon, f"remote={base}/ctx.tar.gz&t={name}:remote&nocache=1")
    finally:
        server.shutdown()
        server.server_close()
    text = "".join(m.get("stream", "") for m in msgs)
    assert "remote tar context" in text and any("aux" in m for m in msgs), msgs
    repo = tmp_path / "repo.git"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "Dockerfile").write_text("FROM busybox\nCOPY f /f\nRUN cat /f\n")
    (repo / "f").write_text("from git\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    msgs = _api_build(daemon, f"remote=file://{repo}&t={name}:git")
    assert "from git" in "".join(m.get("stream", "") for m in msgs), msgs
    errs = _api_build(daemon, "remote=ftp://example.invalid/x")
    assert "not an http(s) URL or a git repository" in json.dumps(errs)
