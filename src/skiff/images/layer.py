"""Layers as tar streams: apply one to a directory, and turn a directory back into one.

`apply_layer` decompresses (gzip via isal, zstd via zstandard, or plain), hashes the
uncompressed stream (the layer's diff id) and unpacks it with Docker's semantics: an existing
path is replaced unless both are directories; `.wh.<name>` deletes `<name>`; `.wh..wh..opq`
hides everything the lower layers have in that directory; directory times are set last.

Two whiteout modes:
  "overlay"  dest is an overlay upper dir: a whiteout becomes a char 0/0 device and an opaque
             dir gets `trusted.overlay.opaque=y` (what Docker's overlay2 driver does).
  "delete"   dest holds the full tree (native snapshots): whiteouts remove files.

Containment: every entry is resolved inside dest without following symlinks; an entry whose
path leaves dest (`../`), whose parent is a symlink, a symlink pointing outside dest, a hard
link to anything not already unpacked in dest, or a size larger than the free space is refused
with InvalidArgument naming the entry. Absolute names are taken relative to dest, as Docker does.
Leaves are always created with O_EXCL/O_NOFOLLOW after removing what was there.

`diff_to_tar` writes an overlay upper dir as a layer (char 0/0 → `.wh.<name>`, opaque →
`.wh..wh..opq`); `tree_to_tar` writes a whole directory (import, export, native diffs).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import posixpath
import queue
import stat
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from skiff.errors import InvalidArgument
from skiff.types import mediatypes as mt
from skiff.types.digest import Digest

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_CHUNK = 1 << 20
_BIG_FILE = 64 << 20


@dataclass(frozen=True, slots=True)
class LayerStats:
    diff_id: Digest  # sha256 of the uncompressed tar
    size: int  # bytes of uncompressed tar
    entries: int
    whiteouts: int
    seconds: float


class ForwardReader:
    """Forward-only reader over the decompressed stream that hashes every byte it pulls.

    tarfile reads headers in 512-byte pieces; buffering here (not in tarfile's stream mode,
    which copies its whole buffer on every read) keeps small reads cheap.
    """

    def __init__(self, raw: BinaryIO, *, threaded: bool = False) -> None:
        self._raw = raw
        self._hasher = hashlib.sha256()
        self._buf = b""
        self._off = 0
        self.pos = 0
        self.total = 0
        self._queue: queue.Queue[bytes | BaseException | None] | None = None
        self._stop = threading.Event()
        self._eof = False
        if threaded:
            # Decompression and hashing release the GIL: doing them in a second thread
            # overlaps them with parsing and writing files in this one.
            self._queue = queue.Queue(maxsize=8)
            self._thread = threading.Thread(target=self._produce, name="layer-reader", daemon=True)
            self._thread.start()

    def _produce(self) -> None:
        assert self._queue is not None
        item: bytes | BaseException | None
        try:
            while not self._stop.is_set():
                chunk = self._raw.read(_CHUNK)
                if not chunk:
                    break
                self._hasher.update(chunk)
                self._put(chunk)
            item = None
        except Exception as e:
            item = InvalidArgument(f"layer: corrupt or truncated compressed stream: {e}")
            item.__cause__ = e
        self._put(item)

    def _put(self, item: bytes | BaseException | None) -> None:
        assert self._queue is not None
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Stop the reader thread (if any); the stream is not read further."""
        if self._queue is not None:
            self._stop.set()
            self._thread.join()

    def _next_chunk(self) -> bytes:
        if self._queue is None:
            chunk = self._raw.read(_CHUNK)
            self._hasher.update(chunk)
            return chunk
        if self._eof:
            return b""
        item = self._queue.get()
        if item is None:
            self._eof = True
            return b""
        if isinstance(item, BaseException):
            self._eof = True
            raise item
        return item

    def _fill(self) -> bool:
        chunk = self._next_chunk()
        if not chunk:
            return False
        self.total += len(chunk)
        self._buf = self._buf[self._off :] + chunk if self._off < len(self._buf) else chunk
        self._off = 0
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._buf[self._off :]]
            self._buf, self._off = b"", 0
            while self._fill():
                parts.append(self._buf)
                self._buf = b""
            data = b"".join(parts)
            self.pos += len(data)
            return data
        while len(self._buf) - self._off < n:
            if not self._fill():
                break
        data = self._buf[self._off : self._off + n]
        self._off += len(data)
        self.pos += len(data)
        return data

    def copy_to_fd(self, fd: int, n: int) -> int:
        """Write the next `n` bytes to `fd`; returns how many there were."""
        left = n
        while left > 0:
            if self._off >= len(self._buf) and not self._fill():
                break
            view = memoryview(self._buf)[self._off : self._off + left]
            while view:
                w = os.write(fd, view)
                view = view[w:]
                self._off += w
                self.pos += w
                left -= w
        return n - left

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self.pos:
            raise io.UnsupportedOperation("layer stream: only forward seeks")
        while self.pos < pos:
            if not self.read(min(pos - self.pos, _CHUNK)):
                break
        return self.pos

    def drain(self) -> None:
        self._off = len(self._buf)
        while self._fill():
            self._off = len(self._buf)

    def digest(self) -> Digest:
        return Digest("sha256", self._hasher.hexdigest())


class _Prefixed:
    """`src` with its first bytes (already read to sniff the format) put back in front."""

    def __init__(self, prefix: bytes, src: BinaryIO) -> None:
        self._prefix = prefix
        self._src = src

    def read(self, n: int = -1) -> bytes:
        if self._prefix:
            if n is None or n < 0:
                data = self._prefix + self._src.read()
                self._prefix = b""
                return data
            data, self._prefix = self._prefix[:n], self._prefix[n:]
            if len(data) < n:
                data += self._src.read(n - len(data))
            return data
        return self._src.read(n)

    def readinto(self, buf: bytearray | memoryview) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


def _peek_magic(src: BinaryIO) -> tuple[bytes, BinaryIO]:
    head = b""
    while len(head) < 4:
        chunk = src.read(4 - len(head))
        if not chunk:
            break
        head += chunk
    return head, _Prefixed(head, src)  # type: ignore[return-value]


def open_decompressed(src: BinaryIO, media_type: str) -> BinaryIO:
    """A reader of the uncompressed tar. The media type decides; plain-tar types are sniffed
    (docker-archive layers are often compressed whatever they claim)."""
    compression = mt.layer_compression(media_type)
    if not compression:
        magic, src = _peek_magic(src)
        if magic[:2] == b"\x1f\x8b":
            compression = "gzip"
        elif magic == b"\x28\xb5\x2f\xfd":
            compression = "zstd"
    if compression == "gzip":
        from isal import igzip_threaded

        return igzip_threaded.open(src, "rb", threads=1, block_size=_CHUNK)  # type: ignore[no-untyped-call,no-any-return]
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(
            src, read_size=_CHUNK, read_across_frames=True, closefd=False
        )
    return src


def _entry_error(name: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"layer entry {name!r}: {why}")


class _Unpacker:
    def __init__(self, dest: Path, overlay: bool) -> None:
        self.dest = os.path.realpath(dest)
        self.overlay = overlay
        self.dirs_ok: set[str] = {""}
        self.unpacked: set[str] = set()
        self.dir_times: list[tuple[str, int, int]] = []
        self.entries = 0
        self.whiteouts = 0
        self._free_checked_at = 0.0
        self._free = 0

    # path handling
    def clean(self, name: str) -> str:
        """The entry's path relative to dest ("" = dest itself), as Docker's Clean + Join."""
        if "\x00" in name:
            raise _entry_error(name, "NUL byte in name")
        n = posixpath.normpath(name) if name else "."
        if n == ".." or n.startswith("../"):
            raise _entry_error(name, f"path is outside of {self.dest} (breakout)")
        n = n.lstrip("/")
        return "" if n in (".", "") else n

    def abs(self, rel: str) -> str:
        return os.path.join(self.dest, rel) if rel else self.dest

    def ensure_parent(self, name: str, rel: str) -> None:
        """Make sure every parent of `rel` is a real directory inside dest (creating missing
        ones 0755 as Docker does), never following a symlink."""
        parent = posixpath.dirname(rel)
        if parent in self.dirs_ok:
            return
        cur = ""
        for comp in parent.split("/"):
            cur = f"{cur}/{comp}" if cur else comp
            if cur in self.dirs_ok:
                continue
            p = self.abs(cur)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                os.mkdir(p, 0o755)
                self.dirs_ok.add(cur)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise _entry_error(
                    name, f"parent {cur!r} is a symlink; refusing to write through it"
                )
            if not stat.S_ISDIR(st.st_mode):
                raise _entry_error(name, f"parent {cur!r} is not a directory")
            self.dirs_ok.add(cur)

    def remove(self, rel: str) -> None:
        p = self.abs(rel)
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            _rmtree(p)
            prefix = rel + "/"
            self.dirs_ok = {d for d in self.dirs_ok if d != rel and not d.startswith(prefix)}
        else:
            os.unlink(p)

    def check_space(self, name: str, size: int) -> None:
        if size < _BIG_FILE:
            return
        now = time.monotonic()
        if now - self._free_checked_at > 1.0:
            vfs = os.statvfs(self.dest)
            self._free = vfs.f_bavail * vfs.f_frsize
            self._free_checked_at = now
        if size > self._free:
            raise _entry_error(
                name,
                f"claims {size} bytes, more than the {self._free} bytes free under {self.dest}",
            )

    # entries
    def apply(self, tf: tarfile.TarFile, reader: ForwardReader, ti: tarfile.TarInfo) -> None:
        name = ti.name
        rel = self.clean(name)
        self.entries += 1
        if rel == "":
            return  # the root: Docker leaves dest itself alone
        base = posixpath.basename(rel)
        self.ensure_parent(name, rel)
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(name, rel, base, ti)
            return
        path = self.abs(rel)
        if ti.isreg() or ti.type == tarfile.CONTTYPE:
            # Hot path: no lstat first; O_EXCL tells us when something is in the way.
            sparse: list[tuple[int, int]] = list(ti.sparse or [])  # type: ignore[arg-type]
            stored = sum(n for _, n in sparse) if ti.sparse is not None else ti.size
            self.check_space(name, stored)
            self.regular(name, rel, path, reader, ti)
            if not self.overlay:
                self.unpacked.add(rel)
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None and not (stat.S_ISDIR(st.st_mode) and ti.isdir()):
            self.remove(rel)
        if ti.isdir():
            if st is None or not stat.S_ISDIR(st.st_mode):
                os.mkdir(path, 0o700)
            self.dirs_ok.add(rel)
            self.dir_times.append((path, _ns(ti, "atime"), _ns(ti, "mtime")))
        elif ti.issym():
            target = ti.linkname
            if not target.startswith("/"):
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
                if resolved == ".." or resolved.startswith("../"):
                    raise _entry_error(
                        name, f"invalid symlink {name!r} -> {target!r}: points outside the layer"
                    )
            os.symlink(target, path)
        elif ti.islnk():
            self.hardlink(name, path, ti)
            return
        elif ti.ischr() or ti.isblk():
            kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(ti.devmajor, ti.devminor))
        elif ti.isfifo():
            os.mkfifo(path, 0o600)
        else:
            raise _entry_error(name, f"unsupported tar entry type {ti.type!r}")
        self.metadata(name, path, ti)
        if not self.overlay:
            self.unpacked.add(rel)

    def regular(
        self, name: str, rel: str, path: str, reader: ForwardReader, ti: tarfile.TarInfo
    ) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            self.remove(rel)
            fd = os.open(path, flags, 0o600)
        try:
            reader.seek(ti.offset_data)
            if ti.sparse is not None:
                sparse: list[tuple[int, int]] = list(ti.sparse)  # type: ignore[arg-type]
                for offset, numbytes in sparse:
                    if offset + numbytes > ti.size:
                        raise _entry_error(name, "sparse map points past the file size")
                    os.lseek(fd, offset, os.SEEK_SET)
                    if reader.copy_to_fd(fd, numbytes) != numbytes:
                        raise _entry_error(name, "truncated: the stream ended inside the file data")
                os.ftruncate(fd, ti.size)
            else:
                got = reader.copy_to_fd(fd, ti.size)
                if got != ti.size:
                    raise _entry_error(
                        name,
                        f"truncated: header claims {ti.size} bytes, the stream ended after {got}",
                    )
            self.metadata(name, fd, ti)
        finally:
            os.close(fd)

    def hardlink(self, name: str, path: str, ti: tarfile.TarInfo) -> None:
        try:
            target_rel = self.clean(ti.linkname) if ti.linkname else ""
        except InvalidArgument:
            raise _entry_error(
                name, f"hard link target {ti.linkname!r} is outside of {self.dest} (breakout)"
            )
        if not target_rel:
            raise _entry_error(name, f"hard link to {ti.linkname!r}: not a file in the layer")
        self.ensure_parent(name, target_rel)
        target = self.abs(target_rel)
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            raise _entry_error(
                name, f"hard link target {ti.linkname!r} does not exist in the layer"
            )
        if stat.S_ISDIR(st.st_mode):
            raise _entry_error(name, f"hard link target {ti.linkname!r} is a directory")
        os.link(target, path, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            self.metadata(name, path, ti)
        if not self.overlay:
            self.unpacked.add(posixpath.relpath(path, self.dest))

    def whiteout(self, name: str, rel: str, base: str, ti: tarfile.TarInfo) -> None:
        parent_rel = posixpath.dirname(rel)
        self.whiteouts += 1
        if base == WHITEOUT_OPAQUE:
            if self.overlay:
                os.setxattr(self.abs(parent_rel), OPAQUE_XATTR, b"y", follow_symlinks=False)
            else:
                prefix = parent_rel + "/" if parent_rel else ""
                for child in os.listdir(self.abs(parent_rel)):
                    child_rel = prefix + child
                    if not self._was_unpacked(child_rel):
                        self.remove(child_rel)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # aufs metadata (.wh..wh.plnk, …): nothing to apply
        original = posixpath.join(parent_rel, base[len(WHITEOUT_PREFIX) :])
        self.remove(original)
        if self.overlay:
            p = self.abs(original)
            os.mknod(p, stat.S_IFCHR | 0o600, 0)
            os.lchown(p, ti.uid, ti.gid)

    def _was_unpacked(self, rel: str) -> bool:
        if rel in self.unpacked:
            return True
        prefix = rel + "/"
        return any(u.startswith(prefix) for u in self.unpacked)

    def metadata(self, name: str, target: str | int, ti: tarfile.TarInfo) -> None:
        """Owner, xattrs, mode and times of the entry just created at `target` (a path, or an
        open fd for regular files: no path lookups on the hot path)."""
        by_fd = isinstance(target, int)
        try:
            if isinstance(target, int):
                os.fchown(target, ti.uid, ti.gid)
            else:
                os.lchown(target, ti.uid, ti.gid)
        except OSError as e:
            raise _entry_error(name, f"chown {ti.uid}:{ti.gid}: {e.strerror}")
        if ti.pax_headers:
            for key, value in ti.pax_headers.items():
                if not key.startswith("SCHILY.xattr."):
                    continue
                attr = key[len("SCHILY.xattr.") :]
                if attr.startswith("trusted.overlay."):
                    continue  # overlay's own metadata is never taken from a layer
                raw = value.encode("utf-8", "surrogateescape")
                try:
                    if by_fd:
                        os.setxattr(target, attr, raw)
                    else:
                        os.setxattr(target, attr, raw, follow_symlinks=False)
                except OSError as e:
                    if e.errno not in (errno.ENOTSUP, errno.EPERM) or not ti.issym():
                        raise _entry_error(name, f"setxattr {attr}: {e.strerror}")
        times = (_ns(ti, "atime"), _ns(ti, "mtime"))
        if isinstance(target, int):
            os.fchmod(target, ti.mode & 0o7777)
            os.utime(target, ns=times)
        elif not ti.issym():
            os.chmod(target, ti.mode & 0o7777)
            if not ti.isdir():
                os.utime(target, ns=times)
        else:
            os.utime(target, ns=times, follow_symlinks=False)

    def finish(self) -> None:
        for path, atime, mtime in reversed(self.dir_times):
            try:
                os.utime(path, ns=(atime, mtime), follow_symlinks=False)
            except FileNotFoundError:
                pass  # removed by a later entry


def _ns(ti: tarfile.TarInfo, which: str) -> int:
    if not ti.pax_headers:
        return int(ti.mtime) * 1_000_000_000
    mtime = int(float(ti.pax_headers.get("mtime", ti.mtime)) * 1e9)
    if which == "mtime":
        return mtime
    atime = ti.pax_headers.get("atime")
    if atime is None:
        return mtime
    return max(int(float(atime) * 1e9), mtime)


def _rmtree(path: str) -> None:
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            _rmtree(entry.path)
        else:
            os.unlink(entry.path)
    os.rmdir(path)


def is_overlay_layer_dir(dest: Path) -> bool:
    """An overlay snapshot's `fs` dir sits beside its `work` dir (see skiff.snapshots.overlay)."""
    return dest.name == "fs" and (dest.parent / "work").is_dir()


def apply_layer(
    src: BinaryIO, dest: Path, media_type: str, *, overlay: bool | None = None
) -> LayerStats:
    """Unpack the layer read from `src` into `dest`; see the module docstring.

    `overlay=None` picks overlay whiteouts when dest is an overlay snapshot's upper dir.
    Raises InvalidArgument naming the entry for anything malformed or escaping dest.
    """
    started = time.monotonic()
    dest = Path(dest)
    if overlay is None:
        overlay = is_overlay_layer_dir(dest)
    raw = open_decompressed(src, media_type)
    reader = ForwardReader(raw, threaded=True)
    unpacker = _Unpacker(dest, overlay)
    last = "(start of layer)"
    try:
        try:
            tf = tarfile.open(fileobj=reader, mode="r:", errorlevel=2)  # type: ignore[call-overload]
        except tarfile.ReadError as e:
            if reader.total == 0:
                if raw is not src and not isinstance(raw, _Prefixed):
                    # python-zstandard reports a truncated frame as a clean end; a real
                    # layer never decompresses to nothing (an empty tar is 1024 bytes).
                    raise InvalidArgument("layer: the compressed stream holds no data (truncated?)")
                return LayerStats(reader.digest(), 0, 0, 0, time.monotonic() - started)
            raise InvalidArgument(f"layer: not a tar archive: {e}")
        while True:
            try:
                ti = tf.next()
            except tarfile.TarError as e:
                raise InvalidArgument(f"layer: after entry {last!r}: {e}")
            if ti is None:
                break
            last = ti.name
            try:
                unpacker.apply(tf, reader, ti)
            except InvalidArgument:
                raise
            except OSError as e:
                raise _entry_error(ti.name, f"{e.strerror or e}")
        unpacker.finish()
        reader.drain()
    except (EOFError, OSError) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise InvalidArgument(f"layer: after entry {last!r}: {e}")
        raise InvalidArgument(f"layer: after entry {last!r}: corrupt or truncated stream: {e}")
    finally:
        reader.close()
        close = getattr(raw, "close", None)
        if raw is not src and close is not None:
            try:
                close()
            except Exception:
                pass
    return LayerStats(
        reader.digest(),
        reader.total,
        unpacker.entries,
        unpacker.whiteouts,
        time.monotonic() - started,
    )


# ---------------------------------------------------------------- writing layers


def _xattrs(path: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for attr in sorted(names):
        if attr.startswith("trusted.overlay.") or attr == "security.selinux":
            continue
        try:
            out[attr] = os.getxattr(path, attr, follow_symlinks=False)
        except OSError:
            continue
    return out


class _TypedModeTarInfo(tarfile.TarInfo):
    """A header whose mode keeps the file-type bits (0o120777 for a symlink, 0o040755 for a
    directory), as Docker's pkg/archive writes `export` tars (its fillGo18FileTypeBits).
    Python's tarfile masks the mode to 0o7777, so the field is rewritten after the fact."""

    def get_info(self) -> dict[str, Any]:
        info = dict(super().get_info())
        info["skiff_full_mode"] = self.mode
        return info

    @staticmethod
    def _create_header(info: dict[str, Any], format: int, encoding: str, errors: str) -> bytes:
        buf: bytes = tarfile.TarInfo._create_header(info, format, encoding, errors)  # type: ignore[attr-defined]
        mode = int(info.get("skiff_full_mode", 0))
        if not mode & ~0o7777 or info.get("type") in (tarfile.XHDTYPE, tarfile.XGLTYPE):
            return buf
        header = bytearray(buf[-tarfile.BLOCKSIZE :])
        header[100:108] = tarfile.itn(mode, 8, format)  # type: ignore[attr-defined]
        checksum = tarfile.calc_chksums(bytes(header))[0]  # type: ignore[attr-defined]
        header[148:155] = b"%06o\0" % checksum
        return buf[: -tarfile.BLOCKSIZE] + bytes(header)


# The file-type bits Go's archive/tar used to put in a header's mode (c_ISDIR, c_ISREG, …).
_TYPE_BITS = {
    tarfile.DIRTYPE: 0o040000,
    tarfile.REGTYPE: 0o100000,
    tarfile.LNKTYPE: 0o100000,
    tarfile.SYMTYPE: 0o120000,
    tarfile.CHRTYPE: 0o020000,
    tarfile.BLKTYPE: 0o060000,
    tarfile.FIFOTYPE: 0o010000,
}


class TarBuilder:
    """Writes entries from lstat results with Docker's conventions (PAX, no user/group names,
    hard links detected by inode, xattrs as SCHILY.xattr). `typed_modes` keeps the file-type
    bits in each mode, as Docker's `export` (and `cp` out of a container) tars have them."""

    def __init__(self, out: BinaryIO, *, typed_modes: bool = False) -> None:
        self.tf = tarfile.open(
            fileobj=out,
            mode="w|",
            format=tarfile.PAX_FORMAT,
            bufsize=_CHUNK,
            tarinfo=_TypedModeTarInfo if typed_modes else tarfile.TarInfo,
        )
        self.tf.copybufsize = _CHUNK  # type: ignore[attr-defined]
        self.inodes: dict[tuple[int, int], str] = {}
        self.typed_modes = typed_modes

    def add(self, path: str, arcname: str, st: os.stat_result | None = None) -> None:
        st = st or os.lstat(path)
        ti = self.tf.tarinfo(arcname)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.uname = ti.gname = ""
        ti.mtime = st.st_mtime_ns // 1_000_000_000
        xattrs = _xattrs(path)
        for attr, value in xattrs.items():
            pax: dict[str, str] = ti.pax_headers  # type: ignore[assignment]
            pax["SCHILY.xattr." + attr] = value.decode("utf-8", "surrogateescape")
        mode = st.st_mode
        data: BinaryIO | None = None
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.inodes:
                ti.type = tarfile.LNKTYPE
                ti.linkname = self.inodes[key]
            else:
                if st.st_nlink > 1:
                    self.inodes[key] = arcname
                ti.type = tarfile.REGTYPE
                ti.size = st.st_size
                data = open(path, "rb")
        elif stat.S_ISDIR(mode):
            ti.type = tarfile.DIRTYPE
            if not ti.name.endswith("/"):
                ti.name += "/"
        elif stat.S_ISLNK(mode):
            ti.type = tarfile.SYMTYPE
            ti.linkname = os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            ti.type = tarfile.FIFOTYPE
        else:
            return  # sockets are not archived (as Docker)
        if self.typed_modes:
            ti.mode |= _TYPE_BITS[ti.type]
        try:
            self.tf.addfile(ti, data)
        finally:
            if data is not None:
                data.close()

    def whiteout(self, arcname: str, uid: int = 0, gid: int = 0) -> None:
        ti = tarfile.TarInfo(arcname)
        ti.type = tarfile.REGTYPE
        ti.mode = 0o644
        ti.uid, ti.gid = uid, gid
        ti.uname = ti.gname = ""
        ti.mtime = 0
        self.tf.addfile(ti)

    def close(self) -> None:
        self.tf.close()


def _walk(root: str, rel: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
    """(path, relative name, lstat) of everything under root, parents before children, sorted."""
    base = os.path.join(root, rel) if rel else root
    names = sorted(os.listdir(base))
    for name in names:
        child_rel = f"{rel}/{name}" if rel else name
        path = os.path.join(base, name)
        st = os.lstat(path)
        yield path, child_rel, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root, child_rel)


def _exists_in(lower_dirs: list[Path], rel: str) -> bool:
    return any(os.path.lexists(os.path.join(d, rel)) for d in lower_dirs)


def diff_to_tar(upper: Path, out: BinaryIO, lower_dirs: list[Path] | None = None) -> None:
    """Write the overlay upper dir `upper` as a layer tar to `out`.

    A char 0/0 device becomes `.wh.<name>`; a directory with trusted.overlay.opaque=y gets a
    `.wh..wh..opq` entry after it. With `lower_dirs`, whiteouts of names no lower dir has are
    left out (they hide nothing).
    """
    builder = TarBuilder(out)
    root = str(upper)
    for path, rel, st in _walk(root):
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            if lower_dirs is not None and not _exists_in(lower_dirs, rel):
                continue
            parent, base = posixpath.split(rel)
            builder.whiteout(posixpath.join(parent, WHITEOUT_PREFIX + base), st.st_uid, st.st_gid)
            continue
        builder.add(path, rel, st)
        if stat.S_ISDIR(st.st_mode):
            try:
                opaque = os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False)
            except OSError:
                opaque = b""
            if opaque == b"y":
                builder.whiteout(posixpath.join(rel, WHITEOUT_OPAQUE), st.st_uid, st.st_gid)
    builder.close()


def tree_to_tar(root: Path, out: BinaryIO, *, prefix: str = "") -> None:
    """Write the whole directory tree at `root` (no whiteout conversion)."""
    builder = TarBuilder(out)
    for path, rel, st in _walk(str(root)):
        builder.add(path, prefix + rel, st)
    builder.close()


__all__ = [
    "LayerStats",
    "TarBuilder",
    "apply_layer",
    "diff_to_tar",
    "is_overlay_layer_dir",
    "open_decompressed",
    "tree_to_tar",
]
