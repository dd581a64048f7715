# ruff: noqa: RUF001 (the report is typeset with multiplication signs and dashes)
"""Pull and push of an image with three random layers (32 MB each; 8 MB with --quick) through a
local registry: skiffd ↔ `skiff registry serve` against dockerd ↔ distribution (Debian
docker-registry); and a blob GET on loopback from each registry with the same client."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path

from lib import procs
from lib.context import Context
from lib.engines import Daemon, Distribution, Registry, SkiffRegistry, Unavailable
from lib.stats import Goal, Row
from lib.timing import Side, fill

NAME = "registry"
ALIASES = ("pull", "push", "blob-get")
BUDGET = (150, 45)
LAYERS = 3
REPO = "bench/big"


def layer_mb(quick: bool) -> int:
    return 8 if quick else 32


def rows(quick: bool) -> list[Row]:
    size = f"{LAYERS} × {layer_mb(quick)} MB"
    return [
        Row("pull", f"`docker pull` ({size})", "s", "skiffd ← skiff registry",
            "dockerd ← distribution", Goal("ratio", 0.7)),
        Row("push", f"`docker push` ({size}, to an empty registry)", "s",
            "skiffd → skiff registry", "dockerd → distribution", None),
        Row("blob-get", f"registry blob GET ({layer_mb(quick)} MB, loopback)", "s",
            "skiff registry", "distribution", None),
    ]  # fmt: skip


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    archive.addfile(info, io.BytesIO(data))


def _blob(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest.split(":")[1]).write_bytes(data)
    return digest, len(data)


def make_oci_image(
    dest: Path, layers: int, mb: int, docker_archive: Path | None = None
) -> list[str]:
    """An OCI image layout at `dest` (tag `latest`) with `layers` gzip layers of `mb` MB of
    random bytes each; with `docker_archive`, the same image (tag bench/big:latest) as a
    `docker load` tar too. Returns the layer digests."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    layer_descs, diff_ids = [], []
    archive = tarfile.open(docker_archive, "w") if docker_archive else None
    for i in range(layers):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            payload = os.urandom(mb * 1024 * 1024)
            info = tarfile.TarInfo(f"random-{i}.bin")
            info.size, info.mode, info.mtime = len(payload), 0o644, 0
            tar.addfile(info, io.BytesIO(payload))
        diff_ids.append("sha256:" + hashlib.sha256(raw.getvalue()).hexdigest())
        if archive is not None:
            _add(archive, f"{diff_ids[-1].split(':')[1]}/layer.tar", raw.getvalue())
        digest, size = _blob(blobs, gzip.compress(raw.getvalue(), compresslevel=1, mtime=0))
        layer_descs.append(
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest,
             "size": size}
        )  # fmt: skip
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"bench random layer {i}"} for i in range(layers)],
    }
    cdigest, csize = _blob(blobs, json.dumps(config).encode())
    if archive is not None:
        config_name = f"{cdigest.split(':')[1]}.json"
        _add(archive, config_name, json.dumps(config).encode())
        layer_names = [f"{d.split(':')[1]}/layer.tar" for d in diff_ids]
        entry = {"Config": config_name, "RepoTags": [f"{REPO}:latest"], "Layers": layer_names}
        _add(archive, "manifest.json", json.dumps([entry]).encode())
        archive.close()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest,
                   "size": csize},
        "layers": layer_descs,
    }  # fmt: skip
    mdigest, msize = _blob(blobs, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest,
             "size": msize, "annotations": {"org.opencontainers.image.ref.name": "latest"}}
        ],
    }  # fmt: skip
    (dest / "index.json").write_text(json.dumps(index))
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return [str(d["digest"]) for d in layer_descs]


def seed(layout: Path, registry: Registry) -> None:
    procs.run(
        ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:latest",
         f"docker://{registry.address}/{REPO}:latest"],
        timeout=300,
    )  # fmt: skip


def get_blob(registry: Registry, digest: str) -> float:
    url = f"http://{registry.address}/v2/{REPO}/blobs/{digest}"
    start = time.perf_counter()
    total = 0
    with urllib.request.urlopen(url, timeout=60) as resp:
        while chunk := resp.read(1 << 20):
            total += len(chunk)
    elapsed = time.perf_counter() - start
    if total == 0:
        raise procs.CommandFailed(f"GET {url}: empty body")
    return elapsed


def run(ctx: Context, rows: dict[str, Row], budget: float) -> None:
    base = ctx.tmp / "registry"
    layout = base / "oci"
    ctx.log(f"    making the {LAYERS}-layer image")
    archive = base / "image.tar"
    digests = make_oci_image(layout, LAYERS, layer_mb(ctx.quick), archive)
    started = time.monotonic()
    pairs: dict[str, tuple[Daemon, Registry, type[Registry]]] = {}
    unavailable: dict[str, str] = {}
    registries: dict[str, Registry] = {}
    reg_unavailable: dict[str, str] = {}
    sources: tuple[tuple[str, Callable[[], Daemon], type[Registry]], ...] = (
        ("skiffd", ctx.skiffd, SkiffRegistry),
        ("dockerd", ctx.dockerd, Distribution),
    )
    for side, get, kind in sources:
        reg = kind(base / f"{kind.name}-pull")
        ctx.track(reg)
        try:
            reg.start(timeout=30)
            seed(layout, reg)
            registries[kind.name] = reg
        except (Unavailable, procs.CommandFailed) as e:
            reason = f"{kind.name}: {e}" if not str(e).startswith(kind.name) else str(e)
            unavailable[side] = reg_unavailable[kind.name] = reason
            continue
        try:
            pairs[side] = (get(), reg, kind)
        except Unavailable as e:
            unavailable[side] = str(e)

    def pull(d: Daemon, reg: Registry) -> float:
        ref = f"{reg.address}/{REPO}:latest"
        if _has(d, ref):
            d.cli.run("rmi", "-f", ref, timeout=120)
        t = d.cli.timed("pull", "-q", ref, timeout=120)
        try:
            layers = d.cli.run(
                "image", "inspect", "--format", "{{len .RootFS.Layers}}", ref, timeout=60
            ).stdout.strip()
        except procs.CommandFailed as e:
            raise procs.CommandFailed(f"{d.name}: pulled {ref} but cannot inspect it: {e}")
        if layers != str(LAYERS):
            raise procs.CommandFailed(f"{d.name}: pulled {ref} has {layers!r} layers, not {LAYERS}")
        return t

    push_count = [0]
    pushed: dict[str, str] = {}

    def push(d: Daemon, pull_reg: Registry, kind: type[Registry]) -> float:
        # The pulled image (as after a real pull), else the same image `docker load`ed
        # (untimed): push is measured even where pull is not built yet.
        src = f"{pull_reg.address}/{REPO}:latest"
        if not _has(d, src):
            src = f"{REPO}:latest"
            if not _has(d, src):
                d.cli.run("load", "-q", "-i", str(archive), timeout=120)
        push_count[0] += 1
        fresh = kind(base / f"{kind.name}-push-{push_count[0]}")
        fresh.start(timeout=30)
        try:
            dst = f"{fresh.address}/bench/pushed:latest"
            d.cli.run("tag", src, dst)
            t = d.cli.timed("push", "-q", dst, timeout=120)
            pushed[d.name] = check_pushed(fresh, "bench/pushed")
            d.cli.run("rmi", dst)
            return t
        finally:
            fresh.stop()
            procs.remove_tree(fresh.root)

    pull_sides = [Side(s, partial(pull, d, r)) for s, (d, r, _k) in pairs.items()]
    out = ctx.alternate(pull_sides, runs=ctx.runs, budget_s=budget * 0.45)
    fill(rows["pull"], out, "skiffd", "dockerd", unavailable=unavailable)
    rows["pull"].notes.append(
        "image removed between pulls (untimed); identical blobs in both registries (skopeo copy "
        "of one OCI layout); the pulled image's layer count checked"
    )
    push_sides = [Side(s, partial(push, d, r, k)) for s, (d, r, k) in pairs.items()]
    left = max(10.0, budget * 0.85 - (time.monotonic() - started))
    out = ctx.alternate(push_sides, runs=ctx.runs, budget_s=left)
    fill(rows["push"], out, "skiffd", "dockerd", unavailable=unavailable)
    rows["push"].notes.append(
        "the image as pulled above (where pull failed: the same image `docker load`ed, untimed); "
        "each push goes to a freshly started, empty registry"
    )
    for name, what in pushed.items():
        rows["push"].notes.append(f"{name} pushed {what}")

    get_sides = [Side(name, partial(get_blob, r, digests[0])) for name, r in registries.items()]
    left = max(5.0, budget - (time.monotonic() - started))
    out = ctx.alternate(get_sides, runs=ctx.runs * 2, budget_s=left)
    fill(rows["blob-get"], out, SkiffRegistry.name, Distribution.name, unavailable=reg_unavailable)
    for reg in registries.values():
        reg.stop()
        ctx.untrack(reg)


def check_pushed(registry: Registry, repo: str) -> str:
    """The registry serves the pushed manifest and every blob it names; returns what was
    pushed ("3 layers, application/…tar+gzip, 96 MB")."""
    accept = ", ".join(
        [
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
        ]
    )
    url = f"http://{registry.address}/v2/{repo}/manifests/latest"
    req = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            manifest = json.loads(resp.read())
        for desc in [manifest["config"], *manifest["layers"]]:
            blob = f"http://{registry.address}/v2/{repo}/blobs/{desc['digest']}"
            head = urllib.request.Request(blob, method="HEAD")
            with urllib.request.urlopen(head, timeout=30) as resp:
                if resp.status != 200:
                    raise OSError(f"HEAD {blob}: {resp.status}")
    except (OSError, ValueError, KeyError) as e:
        raise procs.CommandFailed(f"after push, {url}: {e}")
    if len(manifest["layers"]) != LAYERS:
        raise procs.CommandFailed(f"pushed manifest has {len(manifest['layers'])} layers")
    kinds = sorted({str(layer.get("mediaType", "?")) for layer in manifest["layers"]})
    size = sum(int(layer.get("size", 0)) for layer in manifest["layers"])
    return f"{LAYERS} layers, {', '.join(kinds)}, {size / 1e6:.0f} MB"


def _has(d: Daemon, ref: str) -> bool:
    try:
        d.cli.run("image", "inspect", "--format", "{{.Id}}", ref, timeout=60)
        return True
    except procs.CommandFailed:
        return False
