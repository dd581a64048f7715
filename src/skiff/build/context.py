"""The build context: a directory the sources of COPY/ADD come from, never left.

A tar context (plain, gzip, bzip2 or xz, as `docker build` sends it) is unpacked into a private
directory; entries that would land outside it are refused, symlinks are created as they are
(their targets are only ever resolved inside the context). `.dockerignore` is applied here too,
so a client that sends everything still gets Docker's exclusions.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import io
import lzma
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from skiff.build import dockerignore
from skiff.errors import InvalidArgument, NotFound
from skiff.linux.paths import resolve_in_root


def decompressed(src: BinaryIO) -> BinaryIO:
    """`src` with gzip/bzip2/xz undone (by magic bytes); plain streams pass through."""
    head = _read_some(src, 6)
    stream: BinaryIO = _Prefixed(head, src)  # type: ignore[assignment]
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=stream)  # type: ignore[return-value]
    if head[:3] == b"BZh":
        return bz2.BZ2File(stream)  # type: ignore[return-value]
    if head[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(stream)  # type: ignore[return-value]
    return stream


def _read_some(src: BinaryIO, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = src.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


class _Prefixed(io.RawIOBase):
    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head = head
        self.rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read(len(b))
        b[: len(data)] = data
        return len(data)


def _safe_name(name: str) -> str | None:
    clean = posixpath.normpath("/" + name).lstrip("/")
    return clean or None


def extract_tar(src: BinaryIO, dest: Path) -> None:
    """Unpack a context tar into the empty directory `dest`, never writing outside it."""
    root = str(dest)
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    try:
        with tarfile.open(fileobj=decompressed(src), mode="r|") as tar:
            for ti in tar:
                rel = _safe_name(ti.name)
                if rel is None:
                    continue
                path = os.path.join(root, rel)
                parent = os.path.dirname(path)
                os.makedirs(parent, exist_ok=True)
                if os.path.realpath(parent) != os.path.normpath(parent):
                    raise InvalidArgument(
                        f"build context: entry {ti.name!r} goes through a symlink"
                    )
                if os.path.lexists(path) and not (ti.isdir() and os.path.isdir(path)):
                    if os.path.isdir(path) and not os.path.islink(path):
                        import shutil

                        shutil.rmtree(path)
                    else:
                        os.unlink(path)
                if ti.isdir():
                    os.makedirs(path, exist_ok=True)
                    dirs.append((path, ti))
                    continue
                if ti.isreg():
                    f = tar.extractfile(ti)
                    assert f is not None
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                    with os.fdopen(fd, "wb") as out:
                        while chunk := f.read(1 << 20):
                            out.write(chunk)
                    os.chmod(path, ti.mode & 0o7777)
                elif ti.issym():
                    os.symlink(ti.linkname, path)
                elif ti.islnk():
                    target = _safe_name(ti.linkname)
                    if target is None or not os.path.isfile(os.path.join(root, target)):
                        raise InvalidArgument(
                            f"build context: hard link {ti.name!r} to missing {ti.linkname!r}"
                        )
                    os.link(os.path.join(root, target), path)
                    continue
                else:
                    continue  # devices and fifos have no place in a build context
                os.utime(path, (ti.mtime, ti.mtime), follow_symlinks=False)
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise  # the caller may retry elsewhere
        if isinstance(exc, OSError) and exc.errno is not None and not isinstance(exc, EOFError):
            raise InvalidArgument(f"build context: {exc}") from None
        raise InvalidArgument(f"build context: not a valid tar archive: {exc}") from None
    for path, ti in reversed(dirs):
        os.chmod(path, ti.mode & 0o7777)
        os.utime(path, (ti.mtime, ti.mtime))


@dataclass(frozen=True)
class Entry:
    rel: str  # slash separated, relative to the copied source ("" for the source itself)
    path: str  # host path
    st: os.stat_result


class Context:
    """A context directory plus its .dockerignore."""

    def __init__(self, root: Path, ignore: dockerignore.Matcher | None = None) -> None:
        self.root = str(Path(root).absolute())
        if ignore is None:
            try:
                text = (Path(self.root) / ".dockerignore").read_text()
            except (FileNotFoundError, NotADirectoryError):
                text = ""
            ignore = dockerignore.Matcher(dockerignore.parse(text))
        self.ignore = ignore

    def excluded(self, rel: str) -> bool:
        return bool(rel) and self.ignore.excluded(rel)

    def resolve(self, source: str, what: str) -> tuple[str, str]:
        """(context-relative path, host path) of a COPY source; symlinks resolved in the context."""
        rel = posixpath.normpath(source)
        if rel.startswith("../") or rel == "..":
            raise InvalidArgument(
                f"{what} failed: forbidden path outside the build context: {source}"
            )
        rel = posixpath.normpath("/" + rel).lstrip("/")
        host = resolve_in_root(self.root, rel) if rel else self.root
        if not os.path.lexists(host) or (rel and self.excluded(rel)):
            raise NotFound(
                f"{what} failed: file not found in build context or excluded by .dockerignore: "
                f"stat {source}: file does not exist"
            )
        return rel, host

    def glob(self, pattern: str) -> list[str]:
        """Context-relative paths matching a wildcard source (filepath.Match per path)."""
        clean = posixpath.normpath(pattern).lstrip("/")
        if clean.startswith(".."):
            raise InvalidArgument(f"forbidden path outside the build context: {pattern}")
        regex = dockerignore.compile_glob(clean, double_star=False)
        found: list[str] = []

        def walk(rel: str) -> None:
            base = os.path.join(self.root, rel) if rel else self.root
            for name in sorted(os.listdir(base)):
                child = f"{rel}/{name}" if rel else name
                if self.excluded(child) and not self.ignore.has_exclusions:
                    continue
                if regex.match(child):
                    if not self.excluded(child):
                        found.append(child)
                    continue
                full = os.path.join(base, name)
                if os.path.isdir(full) and not os.path.islink(full):
                    walk(child)

        walk("")
        return found

    def walk(self, rel: str, host: str) -> Iterator[Entry]:
        """The source at `host` and, for a directory, everything under it that is not ignored."""
        st = os.stat(host)  # the source itself is followed (inside the context)
        yield Entry("", host, st)
        if stat.S_ISDIR(st.st_mode):
            yield from self._walk_dir(rel, host, "")

    def _walk_dir(self, ctx_rel: str, host: str, sub: str) -> Iterator[Entry]:
        for name in sorted(os.listdir(host)):
            child_ctx = f"{ctx_rel}/{name}" if ctx_rel else name
            child_sub = f"{sub}/{name}" if sub else name
            path = os.path.join(host, name)
            st = os.lstat(path)
            is_dir = stat.S_ISDIR(st.st_mode)
            if self.excluded(child_ctx):
                if is_dir and self.ignore.has_exclusions:
                    inner = list(self._walk_dir(child_ctx, path, child_sub))
                    if inner:
                        yield Entry(child_sub, path, st)
                        yield from inner
                continue
            yield Entry(child_sub, path, st)
            if is_dir:
                yield from self._walk_dir(child_ctx, path, child_sub)


def checksum(entries: list[Entry]) -> str:
    """Content checksum of copied files: names, types, modes, link targets and bytes (no mtimes)."""
    h = hashlib.sha256()
    for e in entries:
        mode = e.st.st_mode
        h.update(f"{e.rel}\0{mode:o}\0".encode())
        if stat.S_ISREG(mode):
            with open(e.path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        elif stat.S_ISLNK(mode):
            h.update(os.readlink(e.path).encode())
        h.update(b"\0")
    return h.hexdigest()
