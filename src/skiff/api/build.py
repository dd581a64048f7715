"""POST /build: the legacy build endpoint (`DOCKER_BUILDKIT=0 docker build`, docker-py, skiff).

The request body is the context tar (plain, gzip, bzip2 or xz), or `remote` names one (an
http(s) URL of a tar or a Dockerfile, or a git repository when git is installed). The answer
streams JSON messages: `{"stream": …}` lines, `{"aux": {"ID": …}}`, and on failure
`{"errorDetail": {"message": …}, "error": …}`. When the client goes away the build is cancelled:
the running step is killed and its container, mounts and snapshot are removed.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from skiff.api.http import Request, Response, Router, json_response
from skiff.build.builder import BuildError, BuildOptions, build, remove_stale
from skiff.build.context import extract_tar
from skiff.engine.containers import Engine
from skiff.errors import InvalidArgument, NotImplementedYet, SkiffError, Unavailable

log = logging.getLogger("skiffd.build")
_DONE = object()


def _json_arg(req: Request, name: str) -> dict[str, Any]:
    raw = req.arg(name, "")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid {name} JSON: {raw!r}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{name} must be a JSON object")
    return value


def options_from(req: Request, engine: Engine) -> BuildOptions:
    tags = [t for t in req.args("t") if t]
    from skiff.types.reference import parse_reference

    for t in tags:
        ref = parse_reference(t)
        if ref.digest is not None:
            raise InvalidArgument(f"invalid tag {t!r}: a tag cannot contain a digest")
    build_args = {
        str(k): (None if v is None else str(v)) for k, v in _json_arg(req, "buildargs").items()
    }
    labels = {str(k): str(v) for k, v in _json_arg(req, "labels").items()}
    network = req.arg("networkmode", "default") or "default"
    return BuildOptions(
        images=engine.images,
        state_dir=engine.data_root / "build",
        run_dir=engine.exec_root / "build",
        runtime=engine.runtimes.path(""),
        runtime_root=engine.runtime_root,
        dockerfile=req.arg("dockerfile", "Dockerfile") or "Dockerfile",
        tags=tags,
        build_args=build_args,
        labels=labels,
        target=req.arg("target", ""),
        no_cache=req.flag("nocache"),
        pull=req.flag("pull"),
        quiet=req.flag("q"),
        network=network,
        platform=req.arg("platform", ""),
        remove=req.flag("rm", True),
        force_remove=req.flag("forcerm"),
    )


def _is_git(remote: str) -> bool:
    return remote.startswith(("git://", "git@", "github.com/")) or remote.split("#", 1)[0].endswith(
        ".git"
    )


def fetch_remote(remote: str, into: Path) -> Path:
    """A remote context, in `into`: a git clone, or an http(s) tar (or plain Dockerfile)."""
    if _is_git(remote):
        git = shutil.which("git")
        if git is None:
            raise NotImplementedYet(
                f"remote git context {remote!r}: git is not installed on the daemon host"
            )
        url, _, fragment = remote.partition("#")
        ref, _, subdir = fragment.partition(":")
        dest = into / "git"
        argv = [git, "clone", "--depth", "1", "--recurse-submodules"]
        if ref:
            argv += ["--branch", ref]
        res = subprocess.run([*argv, url, str(dest)], capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            raise InvalidArgument(f"remote git context {remote!r}: git clone: {res.stderr.strip()}")
        return dest / subdir if subdir else dest
    if not remote.startswith(("http://", "https://")):
        raise InvalidArgument(f"remote context {remote!r}: not an http(s) URL or a git repository")
    path = into / "remote"
    try:
        with urllib.request.urlopen(remote, timeout=120) as resp, open(path, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise Unavailable(f"remote context {remote!r}: {exc}") from None
    return path


def register(router: Router, engine: Engine) -> None:
    if engine.images is not None:
        # skiffd is starting: what a build interrupted by a crash left behind goes now
        try:
            for name in remove_stale(engine.images, engine.exec_root / "build"):
                log.info("removed the snapshot of an interrupted build step: %s", name)
        except SkiffError as err:
            log.warning("build: cleaning up after interrupted builds: %s", err)

    def post_build(req: Request) -> Response:
        if engine.images is None:
            raise NotImplementedYet("the image store is not available in this skiffd")
        options = options_from(req, engine)
        remote = req.arg("remote", "")
        tmp = Path(tempfile.mkdtemp(prefix="build-", dir=_tmp_root(engine)))
        try:
            context: Path
            if remote:
                req.body()
                fetched = fetch_remote(remote, tmp)
                if fetched.is_dir():
                    context = fetched
                else:
                    context = tmp / "context"
                    context.mkdir()
                    with open(fetched, "rb") as f:
                        try:
                            extract_tar(f, context)
                        except InvalidArgument:  # not a tar: the URL names a Dockerfile
                            shutil.copy(fetched, context / (options.dockerfile or "Dockerfile"))
            else:
                # the body is spooled (one sequential write); the builder unpacks it
                context = tmp / "context.tar"
                with open(context, "wb") as out:
                    for chunk in req.body_stream():
                        out.write(chunk)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return Response(200, stream=_run(req, options, context, tmp))

    def prune(req: Request) -> Response:
        """POST /build/prune: the legacy builder's cache entries and RUN --mount=type=cache dirs."""
        deleted, space = prune_build_cache(
            engine.data_root / "build", keep_mounts=not req.flag("all")
        )
        return json_response({"CachesDeleted": deleted, "SpaceReclaimed": space})

    router.add("POST", "/build", post_build)
    router.add("POST", "/build/prune", prune)


def _tmp_root(engine: Engine) -> Path:
    d = engine.exec_root / "build"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _client_gone(req: Request) -> bool:
    """True once the client closed its end (peeks without blocking or changing the socket)."""
    sock = req.handler.connection
    try:
        data: bytes = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        return data == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def _line(msg: dict[str, Any]) -> bytes:
    return (json.dumps(msg) + "\r\n").encode()


def _run(req: Request, options: BuildOptions, context: Path, tmp: Path) -> Iterator[bytes]:
    messages: queue.Queue[Any] = queue.Queue()
    cancel = threading.Event()

    def cancelled() -> bool:
        if not cancel.is_set() and _client_gone(req):
            cancel.set()
        return cancel.is_set()

    def work() -> None:
        try:
            if context.is_dir():
                build(context, options, messages.put, cancelled)
            else:
                with open(context, "rb") as tar:
                    build(tar, options, messages.put, cancelled)
        except SkiffError as err:
            detail: dict[str, Any] = {"message": err.message}
            if isinstance(err, BuildError) and err.code is not None:
                detail["code"] = err.code
            messages.put({"errorDetail": detail, "error": err.message})
        except Exception as err:  # a bug: report it to the client and the log
            log.exception("build")
            messages.put(
                {
                    "errorDetail": {"message": f"internal error: {err}"},
                    "error": f"internal error: {err}",
                }
            )
        finally:
            messages.put(_DONE)

    worker = threading.Thread(target=work, name="build", daemon=True)
    worker.start()
    try:
        while True:
            msg = messages.get()
            if msg is _DONE:
                break
            yield _line(msg)
    finally:
        cancel.set()  # a no-op after a normal end; stops the build when the client went away
        worker.join()
        shutil.rmtree(tmp, ignore_errors=True)


def prune_build_cache(state_dir: Path, *, keep_mounts: bool) -> tuple[list[str], int]:
    """Forget every cached step (the step images stay; `image prune` removes unused ones) and,
    unless `keep_mounts`, the RUN --mount=type=cache directories."""
    import shutil

    deleted: list[str] = []
    space = 0
    cache = state_dir / "cache"
    if cache.is_dir():
        for entry in cache.iterdir():
            if entry.is_file():
                space += entry.stat().st_size
                entry.unlink(missing_ok=True)
                deleted.append(entry.name)
    mounts = state_dir / "cache-mounts"
    if not keep_mounts and mounts.is_dir():
        for d in mounts.iterdir():
            for dirpath, _, files in os.walk(d):
                for f in files:
                    try:
                        space += os.lstat(os.path.join(dirpath, f)).st_size
                    except OSError:
                        pass
            shutil.rmtree(d, ignore_errors=True)
            deleted.append(d.name)
    return deleted, space
