"""`skiff build`: send a build context to the daemon's POST /build and show its output.

The context is a tar of the directory (minus .dockerignore matches) streamed with chunked
encoding; a Dockerfile outside the context is added under a private name as docker does.
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
import sys
import tarfile
from collections.abc import Iterator
from typing import Any

from skiff.cli.flags import BOOL, LIST, STR, Command, Flag
from skiff.cli.main import Context, ExitStatus

BUILD = Command(
    "build",
    "Build an image from a Dockerfile",
    usage="[OPTIONS] PATH | URL | -",
    flags=[
        Flag(
            "add-host", kind=LIST, metavar="list", help="Add a custom host-to-IP mapping (host:ip)"
        ),
        Flag("build-arg", kind=LIST, metavar="list", help="Set build-time variables"),
        Flag(
            "cache-from", kind=LIST, metavar="strings", help="Images to consider as cache sources"
        ),
        Flag(
            "file",
            "f",
            STR,
            "",
            help="Name of the Dockerfile (default: 'PATH/Dockerfile')",
            complete="file",
        ),
        Flag("force-rm", help="Always remove intermediate containers"),
        Flag(
            "iidfile", kind=STR, default="", help="Write the image ID to the file", complete="file"
        ),
        Flag("label", kind=LIST, metavar="list", help="Set metadata for an image"),
        Flag("memory", "m", STR, "", help="Memory limit"),
        Flag(
            "network",
            kind=STR,
            default="",
            help="Set the networking mode for the RUN instructions during build",
        ),
        Flag("no-cache", help="Do not use cache when building the image"),
        Flag(
            "platform",
            kind=STR,
            default="",
            help="Set platform if server is multi-platform capable",
        ),
        Flag(
            "progress", kind=STR, default="auto", help="Set type of progress output (auto, plain)"
        ),
        Flag("pull", help="Always attempt to pull a newer version of the image"),
        Flag("quiet", "q", help="Suppress the build output and print image ID on success"),
        Flag(
            "rm",
            kind=BOOL,
            default=True,
            help="Remove intermediate containers after a successful build",
        ),
        Flag("shm-size", kind=STR, default="", help="Size of /dev/shm"),
        Flag(
            "tag",
            "t",
            LIST,
            metavar="list",
            help="Name and optionally a tag in the 'name:tag' format",
        ),
        Flag("target", kind=STR, default="", help="Set the target build stage to build"),
    ],
    example="skiff build -t myapp:1 .\nskiff build -f docker/Dockerfile --build-arg VERSION=2 -t myapp .",
    min_args=1,
    max_args=1,
)


def read_dockerignore(context: str) -> list[str]:
    try:
        with open(os.path.join(context, ".dockerignore"), encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return []
    patterns = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        patterns.append(
            os.path.normpath(line.lstrip("/"))
            if not line.startswith("!")
            else "!" + os.path.normpath(line[1:].lstrip("/"))
        )
    return patterns


def ignored(rel: str, patterns: list[str]) -> bool:
    """docker's rule: the last matching pattern wins; `!` re-includes; a match covers subpaths."""
    result = False
    for pat in patterns:
        negate = pat.startswith("!")
        p = pat[1:] if negate else pat
        parts = rel.split("/")
        match = any(
            fnmatch.fnmatchcase("/".join(parts[: i + 1]), p) for i in range(len(parts))
        ) or ("**" in p and fnmatch.fnmatchcase(rel, p.replace("**/", "*")))
        if match:
            result = not negate
    return result


def context_tar(context: str, dockerfile: str | None) -> tuple[bytes, str]:
    """(tar bytes, dockerfile name inside the tar)."""
    patterns = read_dockerignore(context)
    buf = io.BytesIO()
    name_in_tar = "Dockerfile"
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(context):
            dirs.sort()
            rel_root = os.path.relpath(root, context)
            for entry in sorted(dirs) + sorted(files):
                rel = os.path.normpath(os.path.join(rel_root, entry))
                if rel in ("Dockerfile", ".dockerignore") or not ignored(rel, patterns):
                    info = tar.gettarinfo(os.path.join(root, entry), arcname=rel)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    if info.isreg():
                        with open(os.path.join(root, entry), "rb") as fh:
                            tar.addfile(info, fh)
                    else:
                        tar.addfile(info)
            dirs[:] = [
                d
                for d in dirs
                if not ignored(os.path.normpath(os.path.join(rel_root, d)), patterns)
                or any(p.startswith("!") for p in patterns)
            ]
        if dockerfile:
            abs_df = os.path.abspath(dockerfile)
            abs_ctx = os.path.abspath(context)
            if abs_df.startswith(abs_ctx + os.sep):
                name_in_tar = os.path.relpath(abs_df, abs_ctx)
            else:
                name_in_tar = f".dockerfile.{os.urandom(10).hex()}"
                with open(abs_df, "rb") as fh:
                    data = fh.read()
                info = tarfile.TarInfo(name_in_tar)
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), name_in_tar


def _chunks(data: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def build(ctx: Context, argv: list[str]) -> int:
    from skiff.cli import progress
    from skiff.cli.output import ram_in_bytes
    from skiff.client.api import iter_json_messages

    opts, args = BUILD.parse(argv)
    source = args[0]
    remote = ""
    if source == "-":
        data = sys.stdin.buffer.read()
        if data[:512].find(b"\0") < 0 and not data.startswith(b"\x1f\x8b"):
            # a Dockerfile on stdin, no context
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                info = tarfile.TarInfo("Dockerfile")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            data = buf.getvalue()
        dockerfile = opts.file or "Dockerfile"
    elif source.startswith(("http://", "https://", "git://", "git@")):
        remote, data, dockerfile = source, b"", opts.file or "Dockerfile"
    else:
        if not os.path.isdir(source):
            raise ExitStatus(1, f"skiff: unable to prepare context: path {source!r} not found")
        df = opts.file or os.path.join(source, "Dockerfile")
        if opts.file == "-":
            raise ExitStatus(
                1,
                "skiff: reading the Dockerfile from stdin with a directory context is not supported",
            )
        if not os.path.exists(df):
            raise ExitStatus(
                1,
                f"skiff: unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {os.path.abspath(df)}: no such file or directory",
            )
        data, dockerfile = context_tar(source, df)
    params: dict[str, Any] = {
        "t": opts.tag or None,
        "dockerfile": dockerfile,
        "buildargs": _kv(opts.build_arg) or None,
        "labels": _kv(opts.label) or None,
        "nocache": opts.no_cache or None,
        "pull": opts.pull or None,
        "q": opts.quiet or None,
        "target": opts.target or None,
        "platform": opts.platform or None,
        "networkmode": opts.network or None,
        "rm": opts.rm,
        "forcerm": opts.force_rm or None,
        "extrahosts": ",".join(opts.add_host) or None,
        "shmsize": ram_in_bytes(opts.shm_size) if opts.shm_size else None,
        "memory": ram_in_bytes(opts.memory) if opts.memory else None,
        "cachefrom": json.dumps(opts.cache_from) if opts.cache_from else None,
        "remote": remote or None,
        "version": "1",
    }
    headers = {"Content-Type": "application/x-tar"}
    resp = ctx.client.request_stream("POST", "/build", params, _chunks(data), headers)
    image_id = ""
    try:
        for aux in progress.show(iter_json_messages(resp), quiet=opts.quiet):
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
    except progress.StreamFailed as err:
        raise ExitStatus(1, f"skiff: build failed: {err}")
    if opts.quiet and image_id:
        print(image_id)
    if opts.iidfile and image_id:
        with open(opts.iidfile, "w", encoding="utf-8") as fh:
            fh.write(image_id)
    return 0


def _kv(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not eq:
            if k not in os.environ:
                continue
            v = os.environ[k]
        out[k] = v
    return out
