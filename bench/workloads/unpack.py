"""Layer unpack of a large gzip and zstd tar: skiff.images.layer.apply_layer against GNU tar
(`tar -xzf`, `tar --zstd -xf`). The layer is a slice of this machine's /usr (real files,
links, permissions), so it compresses like a real image layer."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

from lib import procs
from lib.context import Context
from lib.stats import Goal, Row
from lib.timing import Side, fill

NAME = "unpack"
ALIASES = ("unpack-gzip", "unpack-zstd", "layer")
BUDGET = (120, 30)
WORKER = Path(__file__).resolve().parent.parent / "lib" / "unpack_worker.py"
MEDIA = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
SOURCES = ("usr/lib", "usr/share", "usr/bin")


def size_mb(quick: bool) -> int:
    return 24 if quick else 160


def rows(quick: bool) -> list[Row]:
    mb = size_mb(quick)
    return [
        Row(f"unpack-{kind}", f"layer unpack, {kind} ({mb} MB tar)", "s", "skiff apply_layer",
            f"GNU tar {'-xzf' if kind == 'gzip' else '--zstd -xf'}", Goal("ratio", 1.0))
        for kind in ("gzip", "zstd")
    ]  # fmt: skip


def file_list(limit_bytes: int) -> list[str]:
    """Paths (relative to /) of directories, regular files and symlinks under /usr, in sorted
    order, until the regular files add up to `limit_bytes`."""
    chosen: list[str] = []
    total = 0
    for top in SOURCES:
        for dirpath, dirnames, filenames in os.walk("/" + top):
            dirnames.sort()
            chosen.append(dirpath.lstrip("/"))
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    total += st.st_size
                elif not stat.S_ISLNK(st.st_mode):
                    continue
                chosen.append(path.lstrip("/"))
                if total >= limit_bytes:
                    return chosen
    return chosen


Signature = dict[str, tuple[str, int, int, str, int, int]]


def tree_signature(root: Path) -> Signature:
    """relative path -> (type, size, mode bits, link target, uid, gid): what both unpackers
    must agree on."""
    sig: Signature = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISLNK(st.st_mode):
                sig[rel] = ("link", 0, 0, os.readlink(path), st.st_uid, st.st_gid)
            elif stat.S_ISDIR(st.st_mode):
                sig[rel] = ("dir", 0, stat.S_IMODE(st.st_mode), "", st.st_uid, st.st_gid)
            else:
                mode = stat.S_IMODE(st.st_mode)
                sig[rel] = ("file", st.st_size, mode, "", st.st_uid, st.st_gid)
    return sig


def compare(expected: Signature, got: Signature) -> str:
    """'' when equal, else a one-line description of the first differences."""
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    differ = sorted(p for p in set(expected) & set(got) if expected[p] != got[p])
    if not (missing or extra or differ):
        return ""
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} extra (e.g. {extra[0]})")
    if differ:
        p = differ[0]
        parts.append(f"{len(differ)} differ (e.g. {p}: tar {expected[p]} vs {got[p]})")
    return "; ".join(parts)


def run(ctx: Context, rows: dict[str, Row], budget: float) -> None:
    base = ctx.tmp / "unpack"
    base.mkdir(parents=True, exist_ok=True)
    listing = base / "files.txt"
    listing.write_text("\n".join(file_list(size_mb(ctx.quick) * 1024 * 1024)) + "\n")
    plain = base / "layer.tar"
    ctx.log("    making the layer tars")
    procs.run(["tar", "-C", "/", "--no-recursion", "--numeric-owner", "-cf", str(plain),
               "-T", str(listing)], timeout=300)  # fmt: skip
    layers = {"gzip": base / "layer.tar.gz", "zstd": base / "layer.tar.zst"}
    procs.run(["sh", "-c", f"gzip -6 -c {plain} > {layers['gzip']}"], timeout=300)
    procs.run(["zstd", "-q", "-3", "-f", str(plain), "-o", str(layers["zstd"])], timeout=300)
    plain.unlink()
    per_kind = budget / 2
    for kind, layer in layers.items():
        tar_args = ["-xzf"] if kind == "gzip" else ["--zstd", "-xf"]
        dest = base / f"dest-{kind}"

        def fresh(d: Path = dest) -> Path:
            if d.exists():
                shutil.rmtree(d)
            d.mkdir()
            return d

        def with_tar(layer: Path = layer, tar_args: list[str] = tar_args) -> float:
            return procs.timed(["tar", *tar_args, str(layer), "-C", str(fresh())], timeout=300)

        def with_skiff(layer: Path = layer, kind: str = kind) -> float:
            return procs.timed(
                [sys.executable, str(WORKER), str(layer), str(fresh()), MEDIA[kind]], timeout=300
            )

        with_tar()
        expected = tree_signature(dest)

        def skiff_warmup(expected: Signature = expected, dest: Path = dest) -> None:
            with_skiff()
            diff = compare(expected, tree_signature(dest))
            if diff:
                raise procs.CommandFailed(f"apply_layer's tree differs from GNU tar's: {diff}")

        out = ctx.alternate(
            [Side("skiff", with_skiff, skiff_warmup), Side("tar", with_tar)],
            runs=ctx.runs,
            budget_s=per_kind,
        )
        row = rows[f"unpack-{kind}"]
        fill(row, out, "skiff", "tar")
        row.notes.append(
            f"{layer.stat().st_size / 1e6:.0f} MB compressed; wall time of the whole process for "
            "both (skiff: a Python process calling apply_layer, interpreter start included); "
            "output checked against tar's (paths, types, sizes, modes, owners)"
        )
        shutil.rmtree(dest, ignore_errors=True)
