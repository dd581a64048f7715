"""A content-addressed blob store on the local filesystem.

Layout under `root`:
  blobs/<algorithm>/<hex>       committed blobs, read-only, visible only once verified
  ingest/<sha256(ref)>/data     bytes written so far for an ingest named `ref`
  ingest/<sha256(ref)>/ref      the ref itself (for listing and debugging)
  ingest/<sha256(ref)>/lock     flock(2)ed while a writer is open: one writer per ref
  leases/<id>.lease             a lease: its name, then one digest a line; flock(2)ed (shared)
                                while its holder lives
  leases/lock                   flock(2)ed (exclusive) around lease changes and deletions

Lifecycle of a blob: `writer(ref)` opens (or resumes) an ingest; `write()` appends;
`commit(size, expected)` verifies size and digest, fsyncs and renames the data into blobs/ —
the only way content becomes visible. A crash before the rename leaves just an ingest, which a
later writer with the same ref resumes at `offset` or `abort()`/`prune_ingests()` removes.

Leases (containerd's idea, kept small): an operation that relies on blobs it does not own yet —
a pull that found a layer "Already exists", a load, a build — holds a `Lease` for its duration.
Inside `with store.lease(name):` every digest this context asks `has()` about, and every blob it
commits, is added to the lease; `add()` adds more explicitly. `delete()` refuses a leased blob
(FailedPrecondition) and `gc()` keeps leased blobs and what they reference. Adding to a lease and
deleting are serialised by one lock, and `has()` leases *before* it looks, so a blob `has()` said
exists cannot disappear until the lease is released. A lease whose holder died (its flock gone)
is stale: the next delete or gc removes it.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from skiff.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from skiff.types.digest import Digest

_CHUNK = 1 << 20
_MAX_JSON_SCAN = 8 << 20

# The lease the current context (thread, task) holds, as containerd carries one in its ctx.
_active_lease: contextvars.ContextVar[Lease | None] = contextvars.ContextVar(
    "skiff_content_lease", default=None
)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Writer:
    """An open ingest. Not thread-safe; one writer per ref at a time (others get Unavailable)."""

    def __init__(
        self,
        store: ContentStore,
        ref: str,
        directory: Path,
        expected: Digest | None,
        total: int | None,
    ) -> None:
        self._store = store
        self.ref = ref
        self._dir = directory
        self.expected = expected
        self.total = total
        self._closed = False
        self._lock_fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            from skiff.errors import Unavailable

            raise Unavailable(f"content ingest {ref!r}: locked by another writer")
        self._hasher = hashlib.new(expected.algorithm if expected else "sha256")
        self._file = open(directory / "data", "a+b")
        # Resume: re-hash what an earlier writer left behind.
        self._file.seek(0)
        while chunk := self._file.read(_CHUNK):
            self._hasher.update(chunk)
        self.offset = self._file.tell()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise FailedPrecondition(f"content ingest {self.ref!r}: writer is closed")
        self._file.write(data)
        self._hasher.update(data)
        self.offset += len(data)
        return len(data)

    def digest(self) -> Digest:
        """The digest of the bytes written so far."""
        return Digest(
            self._hasher.name if self._hasher.name in ("sha256", "sha512") else "sha256",
            self._hasher.hexdigest(),
        )

    def commit(self, size: int | None = None, expected: Digest | None = None) -> Digest:
        """Verify and publish the blob. Returns its digest; on mismatch removes the ingest."""
        if self._closed:
            raise FailedPrecondition(f"content ingest {self.ref!r}: writer is closed")
        expected = expected or self.expected
        size = size if size is not None else self.total
        self._file.flush()
        os.fsync(self._file.fileno())
        if expected is not None and expected.algorithm != self._hasher.name:
            # Written with another algorithm than the one asked for at commit: re-hash.
            h = hashlib.new(expected.algorithm)
            self._file.seek(0)
            while chunk := self._file.read(_CHUNK):
                h.update(chunk)
            got = Digest(expected.algorithm, h.hexdigest())
        else:
            got = self.digest()
        if size is not None and size != self.offset:
            self.abort()
            raise InvalidArgument(
                f"content ingest {self.ref!r}: size mismatch: expected {size} bytes, got {self.offset}"
            )
        if expected is not None and got != expected:
            self.abort()
            raise InvalidArgument(
                f"content ingest {self.ref!r}: digest mismatch: expected {expected}, got {got}"
            )
        target = self._store._blob_path(got)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self._dir / "data", 0o444)
        if target.exists():
            self.abort()
            lease = _active_lease.get()
            if lease is not None and lease.store is self._store:
                lease.add(got)
            return got
        os.rename(self._dir / "data", target)
        _fsync_dir(target.parent)
        lease = _active_lease.get()
        if lease is not None and lease.store is self._store:
            lease.add(got)
        self._close()
        shutil.rmtree(self._dir, ignore_errors=True)
        return got

    def abort(self) -> None:
        """Drop the ingest and everything written to it."""
        if not self._closed:
            self._close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def close(self) -> None:
        """Close without committing; the ingest stays for a later writer to resume."""
        if not self._closed:
            self._file.flush()
            self._close()

    def _close(self) -> None:
        self._closed = True
        try:
            self._file.close()
        finally:
            os.close(self._lock_fd)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._closed:
            if exc[0] is not None:
                self.abort()
            else:
                self.close()


class Lease:
    """Blobs kept from `delete` and `gc` until `release()` (or the holder's death).

    Use as a context manager: it is released at the end, and while open it is the current
    context's lease, which `has()` and blob commits add to."""

    def __init__(self, store: ContentStore, name: str) -> None:
        self.store = store
        self.name = name
        self.path = store._leases_dir / f"{uuid.uuid4().hex}.lease"
        self._token: contextvars.Token[Lease | None] | None = None
        self.digests: set[Digest] = set()
        with store._lease_lock():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_SH)
            os.write(self._fd, (json.dumps(name) + "\n").encode())

    def add(self, *digests: Digest) -> None:
        new = [d for d in digests if d not in self.digests]
        if not new:
            return
        if self._fd < 0:
            raise FailedPrecondition(f"content lease {self.name!r}: released")
        with self.store._lease_lock():
            os.write(self._fd, "".join(f"{d}\n" for d in new).encode())
            self.digests.update(new)

    def release(self) -> None:
        if self._fd < 0:
            return
        with self.store._lease_lock():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Lease:
        self._token = _active_lease.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _active_lease.reset(self._token)
            self._token = None
        self.release()


class ContentStore:
    """Blobs by digest (sha256, sha512). Safe for several threads and processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "ingest").mkdir(parents=True, exist_ok=True)
        self._leases_dir = self.root / "leases"
        self._leases_dir.mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._leases_mutex = threading.RLock()
        self._lease_lock_depth = 0

    # Leases
    @contextlib.contextmanager
    def _lease_lock(self) -> Iterator[None]:
        """Exclusive, across threads and processes: lease changes vs. deletions."""
        with self._leases_mutex:
            if self._lease_lock_depth:  # this thread has it already (flock is per open file)
                self._lease_lock_depth += 1
                try:
                    yield
                finally:
                    self._lease_lock_depth -= 1
                return
            fd = os.open(self._leases_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._lease_lock_depth = 1
                try:
                    yield
                finally:
                    self._lease_lock_depth = 0
            finally:
                os.close(fd)

    def lease(self, name: str) -> Lease:
        """A new lease named `name` (for messages), e.g. `with store.lease("pull busybox"):`."""
        return Lease(self, name)

    def _leased_locked(self) -> dict[Digest, str]:
        """Leased digests → the lease's name; removes stale leases. Under `_lease_lock`."""
        out: dict[Digest, str] = {}
        for entry in os.scandir(self._leases_dir):
            if not entry.name.endswith(".lease"):
                continue
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass  # held: alive
                else:
                    os.unlink(entry.path)  # nobody holds it: its holder died
                    continue
                with os.fdopen(os.dup(fd)) as f:
                    lines = f.read().split("\n")
            finally:
                os.close(fd)
            try:
                name = str(json.loads(lines[0]))
            except ValueError:
                name = entry.name
            for line in lines[1:]:
                with contextlib.suppress(InvalidArgument):
                    out.setdefault(Digest.parse(line), name)
        return out

    def leased(self) -> dict[Digest, str]:
        """Digests live leases hold → the name of (one of) the lease(s)."""
        with self._lease_lock():
            return self._leased_locked()

    # Provider
    def _blob_path(self, d: Digest) -> Path:
        return self.root / "blobs" / d.algorithm / d.hex

    def has(self, d: Digest) -> bool:
        lease = _active_lease.get()
        if lease is not None and lease.store is self:
            lease.add(d)  # before looking: a blob seen here stays until the lease ends
        return self._blob_path(d).is_file()

    def path(self, d: Digest) -> Path:
        p = self._blob_path(d)
        if not p.is_file():
            raise NotFound(f"content {d}: not found")
        return p

    def size(self, d: Digest) -> int:
        try:
            return self._blob_path(d).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"content {d}: not found")

    def open(self, d: Digest) -> BinaryIO:
        try:
            return open(self._blob_path(d), "rb")
        except FileNotFoundError:
            raise NotFound(f"content {d}: not found")

    def read(self, d: Digest) -> bytes:
        with self.open(d) as f:
            return f.read()

    # Ingester
    def _ingest_dir(self, ref: str) -> Path:
        return self.root / "ingest" / hashlib.sha256(ref.encode()).hexdigest()

    def writer(self, ref: str, expected: Digest | None = None, total: int | None = None) -> Writer:
        """Open the ingest `ref`, resuming where an earlier writer stopped (see `Writer.offset`).

        Raises AlreadyExists when `expected` is committed already and Unavailable when another
        writer holds `ref`.
        """
        if not ref:
            raise InvalidArgument("content ingest: empty ref")
        if expected is not None and self.has(expected):
            raise AlreadyExists(f"content {expected}: already exists")
        d = self._ingest_dir(ref)
        d.mkdir(parents=True, exist_ok=True)
        ref_file = d / "ref"
        if not ref_file.exists():
            tmp = d / "ref.tmp"
            tmp.write_text(
                json.dumps(
                    {"ref": ref, "expected": str(expected) if expected else None, "total": total}
                )
            )
            os.replace(tmp, ref_file)
        return Writer(self, ref, d, expected, total)

    def ingest(
        self, data: bytes | BinaryIO, expected: Digest | None = None, size: int | None = None
    ) -> Digest:
        """Write a whole blob and commit it. Returns the digest (existing blobs are fine)."""
        if expected is not None and self.has(expected):
            if (
                isinstance(data, (bytes, bytearray))
                and Digest.of_bytes(bytes(data), expected.algorithm) != expected
            ):
                raise InvalidArgument(f"content ingest: digest mismatch: expected {expected}")
            return expected
        w = self.writer(f"ingest-{uuid.uuid4().hex}", expected, size)
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                w.write(data)
            else:
                readinto = getattr(data, "readinto", None)
                if readinto is not None:
                    buf = bytearray(_CHUNK)
                    view = memoryview(buf)
                    while n := readinto(view):
                        w.write(view[:n])
                else:
                    while chunk := data.read(_CHUNK):
                        w.write(chunk)
            return w.commit(size, expected)
        except BaseException:
            w.abort()
            raise

    def ingests(self) -> Iterator[tuple[str, int]]:
        """Open or abandoned ingests: (ref, bytes written)."""
        for d in sorted((self.root / "ingest").iterdir()):
            try:
                ref = json.loads((d / "ref").read_text())["ref"]
                size = (d / "data").stat().st_size if (d / "data").exists() else 0
            except (OSError, ValueError, KeyError):
                continue
            yield ref, size

    def prune_ingests(self) -> int:
        """Remove ingests no writer holds. Returns how many."""
        n = 0
        for d in list((self.root / "ingest").iterdir()):
            fd = os.open(d / "lock", os.O_RDWR | os.O_CREAT, 0o600) if d.is_dir() else -1
            if fd < 0:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            shutil.rmtree(d, ignore_errors=True)
            os.close(fd)
            n += 1
        return n

    # Manager
    def delete(self, d: Digest) -> None:
        """Remove a blob. FailedPrecondition while a lease holds it (gc takes it later)."""
        with self._lease_lock():
            holder = self._leased_locked().get(d)
            if holder is not None:
                raise FailedPrecondition(f"content {d}: held by lease {holder!r}")
            try:
                os.unlink(self._blob_path(d))
            except FileNotFoundError:
                raise NotFound(f"content {d}: not found")

    def list(self) -> Iterator[tuple[Digest, int]]:
        base = self.root / "blobs"
        for alg_dir in sorted(base.iterdir()):
            if alg_dir.name not in ("sha256", "sha512"):
                continue
            for entry in sorted(os.scandir(alg_dir), key=lambda e: e.name):
                try:
                    d = Digest.parse(f"{alg_dir.name}:{entry.name}")
                    yield d, entry.stat().st_size
                except (InvalidArgument, FileNotFoundError):
                    continue

    def children(self, d: Digest) -> builtins.list[Digest]:
        """Blobs a manifest, index or config blob refers to (none for other blobs)."""
        try:
            size = self.size(d)
        except NotFound:
            return []
        if size > _MAX_JSON_SCAN:
            return []
        data = self.read(d)
        if data.lstrip()[:1] != b"{":
            return []
        try:
            obj: Any = json.loads(data)
        except ValueError:
            return []
        if not isinstance(obj, dict):
            return []
        out: builtins.list[Digest] = []
        descs: builtins.list[Any] = []
        if isinstance(obj.get("config"), dict):
            descs.append(obj["config"])
        for key in ("layers", "manifests", "blobs"):
            if isinstance(obj.get(key), list):
                descs.extend(obj[key])
        if isinstance(obj.get("subject"), dict):
            descs.append(obj["subject"])
        for desc in descs:
            if isinstance(desc, dict) and isinstance(desc.get("digest"), str):
                try:
                    out.append(Digest.parse(desc["digest"]))
                except InvalidArgument:
                    continue
        return out

    def gc(self, roots: Iterable[Digest], *, grace_seconds: float = 1.0) -> builtins.list[Digest]:
        """Delete every blob not reachable from `roots` through manifests, indexes and configs.

        Callers pass every live root: image manifests, blobs of builds or pulls in progress.
        Blobs committed since `grace_seconds` before the call are kept (they may belong to a pull whose
        manifest is not registered yet). Returns the digests deleted.
        """
        # Blobs committed while we mark (a pull in flight) are not garbage: anything whose
        # inode changed (chmod + rename at commit) since just before the mark is kept.
        started_ns = time.time_ns() - int(grace_seconds * 1e9)
        with self._lock, self._lease_lock():
            marked: set[Digest] = set()
            stack = [*roots, *self._leased_locked()]
            while stack:
                d = stack.pop()
                if d in marked:
                    continue
                marked.add(d)
                stack.extend(self.children(d))
            deleted: builtins.list[Digest] = []
            for d, _ in list(self.list()):
                if d in marked:
                    continue
                try:
                    if os.stat(self._blob_path(d)).st_ctime_ns >= started_ns:
                        continue
                except FileNotFoundError:
                    continue
                try:
                    os.unlink(self._blob_path(d))  # the lease lock is held: no lease can appear
                    deleted.append(d)
                except FileNotFoundError:
                    pass
            return deleted


__all__ = ["ContentStore", "Lease", "Writer"]
