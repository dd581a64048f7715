"""The registry's filesystem storage: content-addressed blobs, per-repository links, uploads, gc.

Layout under the root::

    blobs/<alg>/<hex[:2]>/<hex>                  blob bytes (manifests are blobs too), shared
    uploads/<uuid>/data, uploads/<uuid>/repo     blob uploads in progress (invisible)
    repositories/<name>/_blobs/<alg>/<hex>       empty link: the repository may serve this blob
    repositories/<name>/_manifests/<alg>/<hex>   link to a manifest blob; holds its media type
    repositories/<name>/_tags/<tag>              the tagged manifest's digest
    repositories/<name>/_referrers/<alg>/<subject-hex>/<alg>-<hex>   a referrer's descriptor JSON

Repository path components start with [a-z0-9], so the `_`-prefixed directories never collide
with nested repository names. Every visible file is written to a temp name, fsynced and renamed:
a blob appears only after its digest was verified, and an interrupted upload never shows.

`gc` marks every blob reachable from any manifest of any repository and sweeps the rest; it
holds the root's lock exclusively while the server's writes hold it shared, and it spares blobs
younger than a grace period (pushed, but whose manifest is not there yet).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from skiff.types import mediatypes as mt
from skiff.types.digest import Digest

from .protocol import OCI_ARTIFACT_MANIFEST, RegistryError

CHUNK = 1 << 20


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuidlib.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class _Upload:
    repo: str
    path: Path
    offset: int
    hasher: Any
    started: float
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class ManifestInfo:
    digest: Digest
    media_type: str
    size: int


@dataclass
class GCReport:
    marked: int = 0
    deleted_blobs: list[str] = field(default_factory=list)
    deleted_manifests: list[str] = field(default_factory=list)
    freed_bytes: int = 0


def references_of(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(blob descriptors, child manifest descriptors) a parsed manifest refers to."""
    blobs: list[dict[str, Any]] = []
    children: list[dict[str, Any]] = []
    if isinstance(doc.get("config"), dict):
        blobs.append(doc["config"])
    for key in ("layers", "blobs"):
        for d in doc.get(key) or []:
            if isinstance(d, dict):
                blobs.append(d)
    for d in doc.get("manifests") or []:
        if isinstance(d, dict):
            children.append(d)
    return blobs, children


class Storage:
    """A registry root on the filesystem. Thread-safe; several processes may share a root."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        for sub in ("blobs", "uploads", "repositories"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._uploads: dict[str, _Upload] = {}
        self._uploads_lock = threading.Lock()

    # -- locking against gc ------------------------------------------------------------
    @contextmanager
    def locked(self, exclusive: bool = False) -> Iterator[None]:
        """Hold the root's lock: shared for writes (they may nest), exclusive for gc."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    # -- paths -------------------------------------------------------------------------
    def blob_path(self, d: Digest) -> Path:
        return self.root / "blobs" / d.algorithm / d.hex[:2] / d.hex

    def _repo(self, name: str) -> Path:
        return self.root / "repositories" / name

    def _blob_link(self, name: str, d: Digest) -> Path:
        return self._repo(name) / "_blobs" / d.algorithm / d.hex

    def _manifest_link(self, name: str, d: Digest) -> Path:
        return self._repo(name) / "_manifests" / d.algorithm / d.hex

    def _tag_path(self, name: str, tag: str) -> Path:
        return self._repo(name) / "_tags" / tag

    def _referrers_dir(self, name: str, subject: Digest) -> Path:
        return self._repo(name) / "_referrers" / subject.algorithm / subject.hex

    # -- repositories ------------------------------------------------------------------
    def repo_exists(self, name: str) -> bool:
        r = self._repo(name)
        return (r / "_blobs").is_dir() or (r / "_manifests").is_dir()

    def repositories(self) -> list[str]:
        base = self.root / "repositories"
        out: list[str] = []
        for dirpath, dirnames, _ in os.walk(base):
            if "_blobs" in dirnames or "_manifests" in dirnames:
                out.append(os.path.relpath(dirpath, base))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(out)

    # -- blobs -------------------------------------------------------------------------
    def blob_exists(self, d: Digest) -> bool:
        return self.blob_path(d).is_file()

    def blob_linked(self, name: str, d: Digest) -> bool:
        if not self.blob_exists(d):
            return False
        return self._blob_link(name, d).exists() or self._manifest_link(name, d).exists()

    def open_blob(self, name: str, d: Digest) -> BinaryIO:
        if not self._blob_link(name, d).exists() and not self._manifest_link(name, d).exists():
            raise RegistryError("BLOB_UNKNOWN", "blob unknown to registry", {"digest": str(d)})
        try:
            return open(self.blob_path(d), "rb")
        except FileNotFoundError:
            raise RegistryError("BLOB_UNKNOWN", "blob unknown to registry", {"digest": str(d)})

    def link_blob(self, name: str, d: Digest) -> None:
        with self.locked():
            if not self.blob_exists(d):
                raise RegistryError("BLOB_UNKNOWN", "blob unknown to registry", {"digest": str(d)})
            self._touch(self._blob_link(name, d))

    @staticmethod
    def _touch(path: Path) -> None:
        if not path.exists():
            _write_atomic(path, b"")

    def unlink_blob(self, name: str, d: Digest) -> None:
        try:
            self._blob_link(name, d).unlink()
        except FileNotFoundError:
            raise RegistryError("BLOB_UNKNOWN", "blob unknown to registry", {"digest": str(d)})

    # -- uploads -----------------------------------------------------------------------
    def start_upload(self, name: str) -> str:
        uid = str(uuidlib.uuid4())
        d = self.root / "uploads" / uid
        d.mkdir(parents=True)
        (d / "data").touch()
        (d / "repo").write_text(name)
        with self._uploads_lock:
            self._uploads[uid] = _Upload(name, d / "data", 0, hashlib.sha256(), time.time())
        return uid

    def _upload(self, name: str, uid: str) -> _Upload:
        unknown = RegistryError(
            "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", {"uuid": uid}
        )
        try:
            uuidlib.UUID(uid)
        except ValueError:
            raise unknown
        with self._uploads_lock:
            up = self._uploads.get(uid)
            if up is None:
                # Another process (or an earlier run) started it: rebuild the state from disk.
                d = self.root / "uploads" / uid
                try:
                    repo = (d / "repo").read_text()
                    hasher = hashlib.sha256()
                    size = 0
                    with open(d / "data", "rb") as f:
                        while chunk := f.read(CHUNK):
                            hasher.update(chunk)
                            size += len(chunk)
                except FileNotFoundError:
                    raise unknown
                up = _Upload(repo, d / "data", size, hasher, (d / "repo").stat().st_mtime)
                self._uploads[uid] = up
        if up.repo != name:
            raise unknown
        return up

    def upload_offset(self, name: str, uid: str) -> int:
        return self._upload(name, uid).offset

    def append_upload(
        self, name: str, uid: str, body: Iterator[bytes], start: int | None = None
    ) -> int:
        """Append a chunk; `start` (from Content-Range) must equal the current offset.

        Raises RegistryError(416) with the current `Range` when the chunk is out of order.
        Returns the new offset.
        """
        up = self._upload(name, uid)
        with up.lock:
            if start is not None and start != up.offset:
                raise RegistryError(
                    "BLOB_UPLOAD_INVALID",
                    f"chunk starts at {start}, upload holds {up.offset} bytes",
                    status=416,
                    headers={"Range": f"0-{max(up.offset - 1, 0)}"},
                )
            try:
                with open(up.path, "r+b") as f:
                    f.seek(up.offset)
                    for chunk in body:
                        f.write(chunk)
                        up.hasher.update(chunk)
                        up.offset += len(chunk)
            except FileNotFoundError:
                raise RegistryError(
                    "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", {"uuid": uid}
                )
            return up.offset

    def finish_upload(self, name: str, uid: str, expected: Digest) -> int:
        """Verify the upload against `expected`, publish the blob, link it into `name`.

        On a digest mismatch the upload is discarded and nothing is stored.
        """
        up = self._upload(name, uid)
        with up.lock:
            if expected.algorithm == "sha256":
                actual_hex = up.hasher.copy().hexdigest()
            else:
                h = hashlib.new(expected.algorithm)
                with open(up.path, "rb") as f:
                    while chunk := f.read(CHUNK):
                        h.update(chunk)
                actual_hex = h.hexdigest()
            if actual_hex != expected.hex:
                self._drop_upload(uid)
                raise RegistryError(
                    "DIGEST_INVALID",
                    "provided digest did not match uploaded content",
                    {"expected": str(expected), "actual": f"{expected.algorithm}:{actual_hex}"},
                )
            with self.locked():
                target = self.blob_path(expected)
                if target.exists():
                    # A concurrent push of the same content won; ours is identical.
                    os.utime(target)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with open(up.path, "rb") as f:
                        os.fsync(f.fileno())
                    os.replace(up.path, target)
                self._touch(self._blob_link(name, expected))
            size = up.offset
            self._drop_upload(uid)
            return size

    def cancel_upload(self, name: str, uid: str) -> None:
        self._upload(name, uid)
        self._drop_upload(uid)

    def _drop_upload(self, uid: str) -> None:
        with self._uploads_lock:
            self._uploads.pop(uid, None)
        shutil.rmtree(self.root / "uploads" / uid, ignore_errors=True)

    # -- manifests and tags ------------------------------------------------------------
    def put_manifest(
        self,
        name: str,
        data: bytes,
        digest: Digest,
        media_type: str,
        tag: str | None,
        referrer: tuple[Digest, dict[str, Any]] | None,
    ) -> None:
        with self.locked():
            if not self.blob_exists(digest):
                _write_atomic(self.blob_path(digest), data)
            _write_atomic(self._manifest_link(name, digest), media_type.encode())
            if referrer is not None:
                subject, descriptor = referrer
                _write_atomic(
                    self._referrers_dir(name, subject) / f"{digest.algorithm}-{digest.hex}",
                    json.dumps(descriptor).encode(),
                )
            if tag is not None:
                _write_atomic(self._tag_path(name, tag), str(digest).encode())

    def manifest_known(self, name: str, d: Digest) -> bool:
        return self._manifest_link(name, d).exists() and self.blob_exists(d)

    def resolve(self, name: str, reference: str) -> Digest:
        """A tag or digest reference → the manifest digest (MANIFEST_UNKNOWN if none)."""
        if ":" in reference:
            d = Digest.parse(reference)
        else:
            try:
                d = Digest.parse(self._tag_path(name, reference).read_text().strip())
            except (FileNotFoundError, NotADirectoryError):
                raise RegistryError(
                    "MANIFEST_UNKNOWN", "manifest unknown", {"name": name, "reference": reference}
                )
        if not self.manifest_known(name, d):
            raise RegistryError(
                "MANIFEST_UNKNOWN", "manifest unknown", {"name": name, "reference": reference}
            )
        return d

    def get_manifest(self, name: str, reference: str) -> tuple[ManifestInfo, bytes]:
        d = self.resolve(name, reference)
        media_type = self._manifest_link(name, d).read_text()
        data = self.blob_path(d).read_bytes()
        return ManifestInfo(d, media_type, len(data)), data

    def delete_manifest(self, name: str, reference: str) -> None:
        """By digest: unlink the manifest, every tag naming it, its referrer entry. By tag: the tag."""
        if ":" not in reference:
            try:
                self._tag_path(name, reference).unlink()
            except FileNotFoundError:
                raise RegistryError(
                    "MANIFEST_UNKNOWN", "manifest unknown", {"name": name, "reference": reference}
                )
            return
        d = self.resolve(name, reference)
        with self.locked():
            self._manifest_link(name, d).unlink()
            for tag in self.tags(name):
                try:
                    if self._tag_path(name, tag).read_text().strip() == str(d):
                        self._tag_path(name, tag).unlink()
                except FileNotFoundError:
                    pass
            refs = self._repo(name) / "_referrers"
            for entry in refs.glob(f"*/*/{d.algorithm}-{d.hex}"):
                entry.unlink(missing_ok=True)

    def tags(self, name: str) -> list[str]:
        try:
            return sorted(
                p.name for p in (self._repo(name) / "_tags").iterdir() if not p.name.startswith(".")
            )
        except FileNotFoundError:
            return []

    def manifests(self, name: str) -> list[Digest]:
        base = self._repo(name) / "_manifests"
        out: list[Digest] = []
        if base.is_dir():
            for alg in base.iterdir():
                for link in alg.iterdir():
                    if not link.name.startswith("."):
                        out.append(Digest(alg.name, link.name))
        return out

    def referrers(self, name: str, subject: Digest) -> list[dict[str, Any]]:
        d = self._referrers_dir(name, subject)
        out: list[dict[str, Any]] = []
        if d.is_dir():
            for entry in sorted(d.iterdir()):
                if entry.name.startswith("."):
                    continue
                alg, _, hexpart = entry.name.partition("-")
                if not self.manifest_known(name, Digest(alg, hexpart)):
                    continue
                try:
                    out.append(json.loads(entry.read_bytes()))
                except (FileNotFoundError, ValueError):
                    continue
        return out

    # -- garbage collection ------------------------------------------------------------
    def gc(
        self, *, grace_seconds: float = 3600.0, delete_untagged: bool = False, dry_run: bool = False
    ) -> GCReport:
        report = GCReport()
        with self.locked(exclusive=True):
            marked: set[Digest] = set()
            for name in self.repositories():
                manifests = self.manifests(name)
                docs: dict[Digest, dict[str, Any]] = {}
                for d in manifests:
                    try:
                        docs[d] = json.loads(self.blob_path(d).read_bytes())
                    except (FileNotFoundError, ValueError):
                        docs[d] = {}
                keep = set(manifests)
                if delete_untagged:
                    keep = self._reachable(name, docs)
                    for d in manifests:
                        if d not in keep:
                            report.deleted_manifests.append(f"{name}@{d}")
                            if not dry_run:
                                self._manifest_link(name, d).unlink(missing_ok=True)
                for d in keep:
                    marked.add(d)
                    blobs, children = references_of(docs.get(d, {}))
                    for desc in blobs + children:
                        try:
                            marked.add(Digest.parse(str(desc.get("digest"))))
                        except Exception:
                            continue
            report.marked = len(marked)
            now = time.time()
            blobs_root = self.root / "blobs"
            for alg in list(blobs_root.iterdir()):
                for prefix in list(alg.iterdir()):
                    for blob in list(prefix.iterdir()):
                        if blob.name.startswith("."):
                            continue
                        d = Digest(alg.name, blob.name)
                        if d in marked:
                            continue
                        st = blob.stat()
                        if now - st.st_mtime < grace_seconds:
                            continue
                        report.deleted_blobs.append(str(d))
                        report.freed_bytes += st.st_size
                        if not dry_run:
                            blob.unlink()
            if not dry_run:
                gone = {Digest.parse(s) for s in report.deleted_blobs}
                for name in self.repositories():
                    base = self._repo(name) / "_blobs"
                    for d in gone:
                        (base / d.algorithm / d.hex).unlink(missing_ok=True)
                for up in (self.root / "uploads").iterdir():
                    try:
                        if now - (up / "repo").stat().st_mtime > max(grace_seconds, 86400):
                            shutil.rmtree(up, ignore_errors=True)
                    except FileNotFoundError:
                        continue
        return report

    def _reachable(self, name: str, docs: dict[Digest, dict[str, Any]]) -> set[Digest]:
        """Manifests reachable from tags (through index children), plus their referrers."""
        todo: list[Digest] = []
        for tag in self.tags(name):
            try:
                todo.append(Digest.parse(self._tag_path(name, tag).read_text().strip()))
            except Exception:
                continue
        seen: set[Digest] = set()
        subjects: dict[Digest, list[Digest]] = {}
        for d, doc in docs.items():
            subj = doc.get("subject")
            if isinstance(subj, dict):
                try:
                    subjects.setdefault(Digest.parse(str(subj.get("digest"))), []).append(d)
                except Exception:
                    pass
        while todo:
            d = todo.pop()
            if d in seen or d not in docs:
                continue
            seen.add(d)
            _, children = references_of(docs[d])
            for c in children:
                try:
                    todo.append(Digest.parse(str(c.get("digest"))))
                except Exception:
                    continue
            todo.extend(subjects.get(d, []))
        return seen


def manifest_media_type(doc: dict[str, Any], content_type: str) -> str:
    """The media type a pushed manifest is stored under: its `mediaType`, else Content-Type."""
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    ct = content_type.split(";")[0].strip()
    if ct:
        return ct
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "blobs" in doc and "config" not in doc:
        return OCI_ARTIFACT_MANIFEST
    return mt.OCI_MANIFEST
