"""The image store: names → images, images → manifests, configs and layer snapshots.

Layout under `data_root`:
  content/     the content store: every image's manifest, config and layer blobs
  snapshots/   <snapshotter>/: one committed snapshot per layer, keyed by chain id, shared by
               every image with that layer; one active snapshot per container
  images/      state.json: {"images": {id: record}, "refs": {full ref: id}}, replaced by
               temp → fsync → rename under a lock (threads and processes)

An image's id is the digest of its config (as Docker's classic store). Every image — pulled,
loaded, imported, committed or bootstrapped — has a manifest, config and layer blobs in the
content store, so `manifest_of` can hand it to push. Layers are unpacked into a temporary
active snapshot and committed under their chain id only when complete and verified.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from skiff.content.store import ContentStore, Lease
from skiff.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    SkiffError,
)
from skiff.images.changes import apply_changes
from skiff.images.layer import apply_layer, diff_to_tar
from skiff.images.rootfs import diff_trees, export_merged, native_changes, overlay_changes
from skiff.snapshots import (
    NativeSnapshotter,
    OverlaySnapshotter,
    new_snapshotter,
    overlay_supported,
)
from skiff.snapshots.snapshotter import Kind
from skiff.types import mediatypes as mt
from skiff.types.digest import Digest
from skiff.types.image import (
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    canonical_json,
    chain_ids,
    media_type_of,
    select_platform,
)
from skiff.types.mount import Mount
from skiff.types.reference import Reference, is_image_id, parse_reference

ZERO_TIME = "0001-01-01T00:00:00Z"
InUse = Callable[[str], bool]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _rfc3339_to_unix(text: str) -> int:
    if not text:
        return 0
    t = text.rstrip("Z")
    if "." in t:
        t = t.split(".", 1)[0]
    for sep in ("+", "-"):
        if sep in t[19:]:
            t = t[:19]
    try:
        return int(datetime.strptime(t[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())
    except ValueError:
        return 0


def host_platform() -> Platform:
    machine = os.uname().machine
    arch = {
        "x86_64": "amd64",
        "aarch64": "arm64",
        "armv7l": "arm",
        "i686": "386",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
    }.get(machine, machine)
    return Platform("linux", arch)


@dataclass(frozen=True)
class ImageRecord:
    id: str
    repo_tags: builtins.list[str]
    repo_digests: builtins.list[str]
    config: dict[str, Any]
    created: str
    size: int
    manifest_digest: Digest
    config_digest: Digest = field(default_factory=lambda: Digest("sha256", "0" * 64))
    manifest_media_type: str = mt.OCI_MANIFEST
    layers: tuple[Descriptor, ...] = ()
    diff_ids: tuple[Digest, ...] = ()
    chain_ids: tuple[Digest, ...] = ()
    parent: str = ""
    last_tag_time: str = ZERO_TIME

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]


class ImageStore:
    """Every local image operation, as library calls. Safe for several threads."""

    def __init__(self, data_root: Path, snapshotter: str | None = None) -> None:
        self.data_root = Path(data_root).absolute()
        self.content = ContentStore(self.data_root / "content")
        name = snapshotter or ("overlayfs" if overlay_supported() else "native")
        self.snapshots: OverlaySnapshotter | NativeSnapshotter = new_snapshotter(
            name, self.data_root / "snapshots" / name
        )
        self.dir = self.data_root / "images"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp = self.data_root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._config_cache: dict[str, dict[str, Any]] = {}
        self._remove_stale_extractions()

    # ------------------------------------------------------------------ state
    @contextlib.contextmanager
    def _state(self, write: bool = False) -> Iterator[dict[str, Any]]:
        with self._lock:
            fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
                try:
                    state: dict[str, Any] = json.loads((self.dir / "state.json").read_text())
                except FileNotFoundError:
                    state = {"images": {}, "refs": {}}
                yield state
                if write:
                    tmp = self.dir / f"state.json.{os.getpid()}.{threading.get_ident()}.tmp"
                    with open(tmp, "w") as f:
                        json.dump(state, f, indent=1, sort_keys=True)
                        f.flush()
                        os.fsync(f.fileno())
                    os.replace(tmp, self.dir / "state.json")
                    dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
                    try:
                        os.fsync(dfd)
                    finally:
                        os.close(dfd)
            finally:
                os.close(fd)

    def _remove_stale_extractions(self) -> None:
        for info in list(self.snapshots.walk()):
            if not info.name.startswith("extract-") or info.kind == Kind.COMMITTED:
                continue
            pid = info.name.split("-")[1]
            if pid.isdigit() and int(pid) != os.getpid() and os.path.exists(f"/proc/{pid}"):
                continue  # another live process is unpacking
            with contextlib.suppress(SkiffError):
                self.snapshots.remove(info.name)

    def _config(self, config_digest: str) -> dict[str, Any]:
        cfg = self._config_cache.get(config_digest)
        if cfg is None:
            cfg = ImageConfig.parse(self.content.read(Digest.parse(config_digest))).raw
            self._config_cache[config_digest] = cfg
        return cfg

    def _record(self, state: dict[str, Any], image_id: str) -> ImageRecord:
        entry = state["images"][image_id]
        cfg = self._config(entry["config"])
        tags: builtins.list[str] = []
        digests: builtins.list[str] = []
        for ref_text, target in sorted(state["refs"].items()):
            if target != image_id:
                continue
            ref = parse_reference(ref_text)
            (digests if ref.digest is not None else tags).append(ref.familiar_name())
        manifest = Manifest.parse(self.content.read(Digest.parse(entry["manifest"])))
        return ImageRecord(
            id=image_id,
            repo_tags=tags,
            repo_digests=digests,
            config=cfg,
            created=str(cfg.get("created") or ZERO_TIME),
            size=int(entry.get("size", 0)),
            manifest_digest=Digest.parse(entry["manifest"]),
            config_digest=Digest.parse(entry["config"]),
            manifest_media_type=manifest.media_type,
            layers=manifest.layers,
            diff_ids=tuple(ImageConfig(cfg).diff_ids),
            chain_ids=tuple(Digest.parse(c) for c in entry.get("chain", [])),
            parent=str(entry.get("parent", "")),
            last_tag_time=str(entry.get("last_tag_time", ZERO_TIME)),
        )

    # ------------------------------------------------------------------ lookups
    def list(self) -> builtins.list[ImageRecord]:
        with self._state() as state:
            records = [self._record(state, i) for i in state["images"]]
        return sorted(records, key=lambda r: r.created, reverse=True)

    def parent_ids(self) -> set[str]:
        """Ids of the images that are the parent of another image (`docker images` hides them
        unless `-a`)."""
        with self._state() as state:
            return self._parents_locked(state)

    @staticmethod
    def _parents_locked(state: dict[str, Any]) -> set[str]:
        images = state["images"]
        return {str(e["parent"]) for e in images.values() if e.get("parent") in images}

    @staticmethod
    def _children_locked(state: dict[str, Any], image_id: str) -> builtins.list[str]:
        return [i for i, e in state["images"].items() if e.get("parent") == image_id]

    def _resolve_id(self, state: dict[str, Any], ref_or_id: str) -> str:
        text = ref_or_id.strip()
        if not text:
            raise NotFound("No such image: ")
        images = state["images"]
        if is_image_id(text):
            full = "sha256:" + text.removeprefix("sha256:")
            if full in images:
                return full
        # name, name:tag, name@digest
        try:
            ref = parse_reference(text)
        except InvalidArgument:
            ref = None
        if ref is not None:
            if str(ref) in state["refs"]:
                return str(state["refs"][str(ref)])
            if ref.digest is not None and ref.tag is not None:
                plain = str(Reference(ref.domain, ref.path, None, ref.digest))
                if plain in state["refs"]:
                    return str(state["refs"][plain])
        # short id prefix
        prefix = text.removeprefix("sha256:")
        if 1 <= len(prefix) < 64 and all(c in "0123456789abcdef" for c in prefix):
            matches = [i for i in images if i.removeprefix("sha256:").startswith(prefix)]
            if len(matches) == 1:
                return str(matches[0])
            if len(matches) > 1:
                raise InvalidArgument(
                    f"{text}: image id prefix is ambiguous ({len(matches)} images)"
                )
        raise NotFound(f"No such image: {text}")

    def resolve(self, ref_or_id: str) -> ImageRecord:
        with self._state() as state:
            return self._record(state, self._resolve_id(state, ref_or_id))

    def manifest_of(self, ref_or_id: str) -> tuple[Digest, str]:
        rec = self.resolve(ref_or_id)
        return rec.manifest_digest, rec.manifest_media_type

    def inspect(self, ref_or_id: str) -> dict[str, Any]:
        rec = self.resolve(ref_or_id)
        cfg = rec.config
        data: dict[str, str] = {}
        if rec.chain_ids:
            dirs = [self.snapshots.upper_path(str(c)) for c in reversed(rec.chain_ids)]
            top = dirs[0]
            data = {
                "MergedDir": str(top.parent / "merged"),
                "UpperDir": str(top),
                "WorkDir": str(top.parent / "work"),
            }
            if len(dirs) > 1:
                data["LowerDir"] = ":".join(str(d) for d in dirs[1:])
        out: dict[str, Any] = {
            "Id": rec.id,
            "RepoTags": rec.repo_tags,
            "RepoDigests": rec.repo_digests,
            "Parent": rec.parent,
            "Comment": str(cfg.get("comment") or ""),
            "Created": rec.created,
            "DockerVersion": str(cfg.get("docker_version") or ""),
            "Author": str(cfg.get("author") or ""),
            "Config": cfg.get("config"),
            "Architecture": str(cfg.get("architecture") or ""),
            "Os": str(cfg.get("os") or ""),
            "Size": rec.size,
            "GraphDriver": {
                "Name": "overlay2" if self.snapshots.name == "overlayfs" else "vfs",
                "Data": data,
            },
            "RootFS": {"Type": "layers", "Layers": [str(d) for d in rec.diff_ids]},
            "Metadata": {"LastTagTime": rec.last_tag_time},
        }
        if cfg.get("variant"):
            out["Variant"] = cfg["variant"]
        if cfg.get("os.version"):
            out["OsVersion"] = cfg["os.version"]
        return out

    def history(self, ref_or_id: str) -> builtins.list[dict[str, Any]]:
        rec = self.resolve(ref_or_id)
        history = ImageConfig(rec.config).history
        sizes = [self._layer_size(c) for c in rec.chain_ids]
        out: builtins.list[dict[str, Any]] = []
        layer = 0
        for h in history:
            size = 0
            if not h.get("empty_layer"):
                size = sizes[layer] if layer < len(sizes) else 0
                layer += 1
            out.append(
                {
                    "Id": "<missing>",
                    "Created": _rfc3339_to_unix(str(h.get("created") or "")),
                    "CreatedBy": str(h.get("created_by") or ""),
                    "Tags": None,
                    "Size": size,
                    "Comment": str(h.get("comment") or ""),
                }
            )
        out.reverse()
        # As Docker: the newest entry is the image, the next its (locally known) parent, …
        cur: ImageRecord | None = rec
        for entry in out:
            if cur is None:
                break
            entry["Id"] = cur.id
            entry["Tags"] = cur.repo_tags or None
            try:
                cur = self.resolve(cur.parent) if cur.parent else None
            except NotFound:
                cur = None
        return out

    def _layer_size(self, chain: Digest) -> int:
        try:
            return self.snapshots.usage(str(chain)).size
        except NotFound:
            return 0

    # ------------------------------------------------------------------ names
    def tag(self, ref_or_id: str, new_ref: str) -> None:
        ref = parse_reference(new_ref)
        if ref.digest is not None:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {new_ref}")
        with self._state(write=True) as state:
            image_id = self._resolve_id(state, ref_or_id)
            state["refs"][str(ref)] = image_id
            state["images"][image_id]["last_tag_time"] = now_rfc3339()

    def untag(self, ref: str) -> None:
        r = parse_reference(ref)
        with self._state(write=True) as state:
            if state["refs"].pop(str(r), None) is None:
                raise NotFound(f"No such image: {ref}")

    def remove(
        self, ref_or_id: str, *, force: bool = False, in_use: InUse = lambda image_id: False
    ) -> builtins.list[dict[str, str]]:
        """Docker's `rmi`: untag the reference given, and delete the image once no reference is
        left. Deleting an image a container uses is a Conflict unless `force`."""
        result: builtins.list[dict[str, str]] = []
        with self._state(write=True) as state:
            image_id = self._resolve_id(state, ref_or_id)
            refs = [r for r, i in state["refs"].items() if i == image_id]
            by_reference = False
            try:
                parsed = parse_reference(ref_or_id)
                by_reference = str(parsed) in state["refs"] and not self._looks_like_id(
                    ref_or_id, image_id
                )
            except InvalidArgument:
                pass
            if by_reference:
                state["refs"].pop(str(parsed))
                result.append({"Untagged": parsed.familiar_name()})
                tags_left = [
                    r for r in refs if r != str(parsed) and parse_reference(r).digest is None
                ]
                if tags_left or self._children_locked(state, image_id):
                    # Docker keeps an image with children once its last tag is gone: it is an
                    # intermediate image again, deleted with its last child.
                    return result
                # The last tag is gone: digests of that repository go too, then the image.
                for r in refs:
                    if r != str(parsed) and r in state["refs"]:
                        state["refs"].pop(r)
                        result.append({"Untagged": parse_reference(r).familiar_name()})
            else:
                if self._children_locked(state, image_id):
                    raise Conflict(
                        f"conflict: unable to delete {image_id.removeprefix('sha256:')[:12]} (cannot be forced) - image has dependent child images"
                    )
                repos = {parse_reference(r).name for r in refs}
                if len(repos) > 1 and not force:
                    raise Conflict(
                        f"conflict: unable to delete {image_id.removeprefix('sha256:')[:12]} (must be forced) - image is referenced in multiple repositories"
                    )
            if in_use(image_id) and not force:
                if by_reference:
                    raise Conflict(
                        f'conflict: unable to remove repository reference "{ref_or_id}" (must force) - container is using its referenced image {image_id.removeprefix("sha256:")[:12]}'
                    )
                raise Conflict(
                    f"conflict: unable to delete {image_id.removeprefix('sha256:')[:12]} (must be forced) - image is being used by a container"
                )
            if not by_reference:
                for r in refs:
                    state["refs"].pop(r, None)
                    result.append({"Untagged": parse_reference(r).familiar_name()})
            result.extend(self._delete_with_parents_locked(state, image_id, in_use))
        return result

    def _delete_with_parents_locked(
        self, state: dict[str, Any], image_id: str, in_use: InUse
    ) -> builtins.list[dict[str, str]]:
        """Delete `image_id`, then its parent chain while each parent is dangling (no reference,
        no other child) and no container uses it: Docker's rmi/prune without --no-prune."""
        parent = str(state["images"][image_id].get("parent", ""))
        out = self._delete_locked(state, image_id)
        while parent and parent in state["images"]:
            if (
                any(i == parent for i in state["refs"].values())
                or self._children_locked(state, parent)
                or in_use(parent)
            ):
                break
            next_parent = str(state["images"][parent].get("parent", ""))
            out.extend(self._delete_locked(state, parent))
            parent = next_parent
        return out

    @staticmethod
    def _looks_like_id(text: str, image_id: str) -> bool:
        t = text.removeprefix("sha256:")
        return (
            len(t) >= 1
            and image_id.removeprefix("sha256:").startswith(t)
            and all(c in "0123456789abcdef" for c in t)
        )

    def _delete_locked(self, state: dict[str, Any], image_id: str) -> builtins.list[dict[str, str]]:
        entry = state["images"].pop(image_id)
        out = [{"Deleted": image_id}]
        used_chains = {c for e in state["images"].values() for c in e.get("chain", [])}
        for chain in reversed(entry.get("chain", [])):
            if chain in used_chains:
                break
            try:
                self.snapshots.remove(chain)
                out.append({"Deleted": chain})
            except NotFound:
                continue
            except FailedPrecondition:
                break  # a container (or another layer) still builds on it
        # Blobs only this image used.
        keep: set[Digest] = set()
        for e in state["images"].values():
            keep.update(self._reachable(Digest.parse(e["manifest"])))
            if e.get("index"):
                keep.update(self._reachable(Digest.parse(e["index"])))
        mine = self._reachable(Digest.parse(entry["manifest"]))
        if entry.get("index"):
            mine |= self._reachable(Digest.parse(entry["index"]))
        for d in mine - keep:
            # A leased blob (a pull or load in progress relies on it) stays for gc to take later.
            with contextlib.suppress(NotFound, FailedPrecondition):
                self.content.delete(d)
        self._config_cache.pop(entry["config"], None)
        return out

    def _reachable(self, root: Digest) -> set[Digest]:
        seen: set[Digest] = set()
        stack = [root]
        while stack:
            d = stack.pop()
            if d in seen:
                continue
            seen.add(d)
            stack.extend(self.content.children(d))
        return seen

    def prune(
        self,
        *,
        dangling_only: bool = True,
        in_use: InUse = lambda image_id: False,
        matches: Callable[[dict[str, Any]], bool] = lambda image_config: True,
    ) -> dict[str, Any]:
        """`image prune`: delete dangling images (all unused ones unless `dangling_only`) whose
        image config `matches` (the label/until filters), each with its dangling parent chain."""
        deleted: builtins.list[dict[str, str]] = []
        reclaimed = 0
        with self._state(write=True) as state:
            # As Docker: only heads (images no other image builds on) are candidates; deleting
            # one takes its dangling parent chain along. Parents of what stays are kept.
            progress = True
            while progress:
                progress = False
                parents = self._parents_locked(state)
                for image_id in list(state["images"]):
                    if image_id not in state["images"] or image_id in parents:
                        continue
                    refs = [r for r, i in state["refs"].items() if i == image_id]
                    tags = [r for r in refs if parse_reference(r).digest is None]
                    if dangling_only and tags:
                        continue
                    if in_use(image_id):
                        continue
                    if not matches(self._config(state["images"][image_id]["config"])):
                        continue
                    before = self._snapshot_bytes()
                    for r in refs:
                        state["refs"].pop(r)
                        deleted.append({"Untagged": parse_reference(r).familiar_name()})
                    deleted.extend(self._delete_with_parents_locked(state, image_id, in_use))
                    reclaimed += max(0, before - self._snapshot_bytes())
                    progress = not dangling_only  # prune -a: parents may be heads now
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def _snapshot_bytes(self) -> int:
        return sum(
            self.snapshots.usage(i.name).size
            for i in self.snapshots.walk()
            if i.kind == Kind.COMMITTED
        )

    def usage(self) -> dict[str, Any]:
        """Sizes for `system df`: per image (Size, and UniqueSize of layers no other image has),
        all layers together, and each container's writable layer."""
        images = self.list()
        counts: dict[str, int] = {}
        for rec in images:
            for c in set(rec.chain_ids):
                counts[str(c)] = counts.get(str(c), 0) + 1
        layer_sizes = {c: self._layer_size(Digest.parse(c)) for c in counts}
        out_images = []
        for rec in images:
            unique = sum(layer_sizes[str(c)] for c in set(rec.chain_ids) if counts[str(c)] == 1)
            out_images.append(
                {
                    "Id": rec.id,
                    "RepoTags": rec.repo_tags,
                    "Size": rec.size,
                    "SharedSize": rec.size - unique,
                    "UniqueSize": unique,
                }
            )
        containers = {}
        for info in self.snapshots.walk():
            if info.kind == Kind.ACTIVE and not info.name.startswith("extract-"):
                containers[info.name] = self.snapshots.usage(info.name).size
        return {
            "LayersSize": sum(layer_sizes.values()),
            "Images": out_images,
            "Containers": containers,
        }

    def gc(
        self, extra_roots: Iterable[Digest] = (), *, grace_seconds: float = 1.0
    ) -> dict[str, Any]:
        """Drop what no image uses: blobs not reachable from an image's manifest/index or from
        `extra_roots` (pulls, pushes, builds in progress), and committed layer snapshots no
        image and no container builds on. Returns {"Blobs": [...], "Snapshots": [...]}."""
        with self._state(write=True) as state:
            roots: builtins.list[Digest] = list(extra_roots)
            used: set[str] = set()
            for e in state["images"].values():
                roots.append(Digest.parse(e["manifest"]))
                if e.get("index"):
                    roots.append(Digest.parse(e["index"]))
                used.update(e.get("chain", []))
            blobs = self.content.gc(roots, grace_seconds=grace_seconds)
            removed: builtins.list[str] = []
            progress = True
            while progress:
                progress = False
                infos = builtins.list(self.snapshots.walk())
                parents = {i.parent for i in infos}
                for info in infos:
                    if (
                        info.kind == Kind.COMMITTED
                        and info.name not in used
                        and info.name not in parents
                    ):
                        with contextlib.suppress(NotFound, FailedPrecondition):
                            self.snapshots.remove(info.name)
                            removed.append(info.name)
                            progress = True
        return {"Blobs": [str(d) for d in blobs], "Snapshots": removed}

    # ------------------------------------------------------------------ creating images
    def _unpack(self, layers: builtins.list[tuple[Descriptor, Digest]]) -> builtins.list[Digest]:
        """Make sure a committed snapshot exists for every layer; returns the chain ids."""
        chains = chain_ids([diff for _, diff in layers])
        parent = ""
        for (desc, diff), chain in zip(layers, chains, strict=True):
            name = str(chain)
            if not self._committed(name):
                self._unpack_one(desc, diff, name, parent)
            parent = name
        return chains

    def _committed(self, name: str) -> bool:
        try:
            return self.snapshots.stat(name).kind == Kind.COMMITTED
        except NotFound:
            return False

    def _unpack_one(
        self, desc: Descriptor, diff: Digest | None, name: str | None, parent: str
    ) -> tuple[str, Digest]:
        key = f"extract-{os.getpid()}-{uuid.uuid4().hex[:12]} {name or 'unknown'}"
        self.snapshots.prepare(key, parent)
        try:
            upper = self.snapshots.upper_path(key)
            try:
                with self.content.open(desc.digest) as blob:
                    stats = apply_layer(
                        blob,
                        upper,
                        desc.media_type,
                        overlay=self.snapshots.whiteout_mode == "overlay",
                    )
            except SkiffError as e:
                raise e.wrap(f"layer {desc.digest}")
            if diff is not None and stats.diff_id != diff:
                raise InvalidArgument(
                    f"layer {desc.digest}: uncompressed digest mismatch: expected {diff}, got {stats.diff_id}"
                )
            if name is None:
                name = (
                    str(chain_ids([stats.diff_id])[0])
                    if not parent
                    else str(chain_ids_from(parent, stats.diff_id))
                )
            try:
                self.snapshots.commit(name, key)
            except AlreadyExists:
                self.snapshots.remove(key)  # unpacked concurrently by someone else
            return name, stats.diff_id
        except BaseException:
            with contextlib.suppress(SkiffError):
                self.snapshots.remove(key)
            raise

    def _register(
        self,
        *,
        manifest_digest: Digest,
        config_digest: Digest,
        chains: builtins.list[Digest],
        refs: builtins.list[Reference],
        index_digest: Digest | None = None,
        parent: str = "",
        progress: Callable[[str], None] | None = None,
    ) -> ImageRecord:
        image_id = str(config_digest)
        size = sum(self._layer_size(c) for c in chains)
        with self._state(write=True) as state:
            entry = state["images"].get(image_id, {})
            entry.update(
                {
                    "manifest": str(manifest_digest),
                    "config": str(config_digest),
                    "chain": [str(c) for c in chains],
                    "size": size,
                }
            )
            if index_digest is not None:
                entry["index"] = str(index_digest)
            if parent and parent != image_id and parent in state["images"]:
                entry["parent"] = parent
            state["images"][image_id] = entry
            for ref in refs:
                old = state["refs"].get(str(ref))
                if old is not None and old != image_id and progress is not None:
                    progress(
                        f"The image {ref.familiar_name()} already exists, renaming the old one with ID {old} to empty string"
                    )
                state["refs"][str(ref)] = image_id
                if ref.digest is None:
                    entry["last_tag_time"] = now_rfc3339()
            return self._record(state, image_id)

    def create_from_manifest(self, ref: str | None, manifest_digest: Digest) -> ImageRecord:
        """Register the image whose manifest (or index: the host platform's manifest) and blobs
        are in the content store (as a pull leaves them); unpacks its layers. `ref` gets the
        tag (if it has one) and `name@<manifest_digest>` as repo digest."""
        refs: builtins.list[Reference] = []
        if ref:
            r = parse_reference(ref)
            if r.tag is not None:
                refs.append(Reference(r.domain, r.path, r.tag))
            refs.append(Reference(r.domain, r.path, None, manifest_digest))
        return self.create_image(manifest_digest, refs)

    def config_digest_of(self, manifest_digest: Digest) -> Digest:
        """The config digest (= image id) of a manifest, or of an index's host-platform manifest."""
        data = self.content.read(manifest_digest)
        if media_type_of(data) in mt.INDEXES:
            data = self.content.read(select_platform(Index.parse(data), host_platform()).digest)
        return Manifest.parse(data).config.digest

    def create_image(
        self,
        manifest_digest: Digest,
        refs: builtins.list[Reference],
        progress: Callable[[str], None] | None = None,
        *,
        parent: str = "",
    ) -> ImageRecord:
        """Register the image of a manifest or index in the content store under `refs` exactly.
        `parent` is the image this one was made from (a build step's previous image, a commit's
        image), as Docker records it: a parent is hidden from `images` while it has children,
        is not dangling, and goes with its last child on `rmi` when nothing else uses it."""
        data = self.content.read(manifest_digest)
        index_digest = None
        if media_type_of(data) in mt.INDEXES:
            index_digest = manifest_digest
            desc = select_platform(Index.parse(data), host_platform())
            manifest_digest = desc.digest
            data = self.content.read(manifest_digest)
        manifest = Manifest.parse(data)
        for d in [manifest.config, *manifest.layers]:
            if not self.content.has(d.digest):
                raise NotFound(
                    f"image {manifest_digest}: blob {d.digest} ({d.media_type}) is not in the content store"
                )
        config = ImageConfig.parse(self.content.read(manifest.config.digest))
        diff_ids = config.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise InvalidArgument(
                f"image {manifest_digest}: manifest has {len(manifest.layers)} layers, config has {len(diff_ids)} diff ids"
            )
        if progress is not None:
            for desc in manifest.layers:
                progress(f"Loading layer {desc.digest.short()}")
        chains = self._unpack(list(zip(manifest.layers, diff_ids, strict=True)))
        return self._register(
            manifest_digest=manifest_digest,
            config_digest=manifest.config.digest,
            chains=chains,
            refs=refs,
            index_digest=index_digest,
            parent=parent,
            progress=progress,
        )

    def _write_image(
        self,
        config: dict[str, Any],
        layers: builtins.list[Descriptor],
        chains: builtins.list[Digest],
        ref: str | None,
        parent: str = "",
    ) -> ImageRecord:
        config_bytes = canonical_json(config)
        config_digest = self.content.ingest(config_bytes, Digest.of_bytes(config_bytes))
        manifest = Manifest(
            Descriptor(mt.OCI_CONFIG, config_digest, len(config_bytes)),
            tuple(layers),
            mt.OCI_MANIFEST,
        )
        manifest_bytes = manifest.to_bytes()
        manifest_digest = self.content.ingest(manifest_bytes, Digest.of_bytes(manifest_bytes))
        refs = [parse_reference(ref)] if ref else []
        for r in refs:
            if r.digest is not None:
                raise InvalidArgument(f"refusing to create a tag with a digest reference: {ref}")
        return self._register(
            manifest_digest=manifest_digest,
            config_digest=config_digest,
            chains=chains,
            refs=refs,
            parent=parent,
        )

    def _ingest_layer_file(self, path: Path) -> Descriptor:
        with open(path, "rb") as f:
            magic = f.read(4)
            f.seek(0)
            digest = self.content.ingest(f)
        if magic[:2] == b"\x1f\x8b":
            media = mt.OCI_LAYER_GZIP
        elif magic == b"\x28\xb5\x2f\xfd":
            media = mt.OCI_LAYER_ZSTD
        else:
            media = mt.OCI_LAYER
        return Descriptor(media, digest, self.content.size(digest))

    def import_rootfs(
        self,
        fileobj: BinaryIO,
        ref: str | None,
        changes: builtins.list[str],
        message: str = "",
        *,
        created: str | None = None,
    ) -> str:
        """`docker import`: a rootfs tarball (plain, gzip or zstd) → a one-layer image. Returns its id."""
        with tempfile.NamedTemporaryFile(dir=self.tmp, prefix="import-") as tmp:
            shutil.copyfileobj(fileobj, tmp, 1 << 20)
            tmp.flush()
            desc = self._ingest_layer_file(Path(tmp.name))
        chain, diff_id = self._unpack_one(desc, None, None, "")
        now = created or now_rfc3339()
        comment = message or "Imported from -"
        container_config = apply_changes({}, changes)
        config: dict[str, Any] = {
            "architecture": host_platform().architecture,
            "comment": comment,
            "config": container_config,
            "created": now,
            "docker_version": "skiff",
            "history": [{"created": now, "comment": comment}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [str(diff_id)]},
        }
        return self._write_image(config, [desc], [Digest.parse(chain)], ref).id

    # ------------------------------------------------------------------ containers
    def lease(self, name: str) -> Lease:
        """A content lease (see skiff.content.store): `with images.lease(f"pull {ref}"):` around a
        pull and its `create_from_manifest` keeps every blob it found or fetched from `rmi`."""
        return self.content.lease(name)

    def prepare_container_rootfs(self, image_id: str, container_key: str) -> builtins.list[Mount]:
        rec = self.resolve(image_id)
        parent = str(rec.chain_ids[-1]) if rec.chain_ids else ""
        try:
            return self.snapshots.prepare(container_key, parent, labels={"image": rec.id})
        except AlreadyExists:
            return self.snapshots.mounts(container_key)

    def container_mounts(self, container_key: str) -> builtins.list[Mount]:
        return self.snapshots.mounts(container_key)

    def remove_container_rootfs(self, container_key: str) -> None:
        with contextlib.suppress(NotFound):
            self.snapshots.remove(container_key)

    def changes(self, container_key: str) -> builtins.list[dict[str, object]]:
        upper = self.snapshots.upper_path(container_key)
        lowers = self.snapshots.lower_paths(container_key)
        if self.snapshots.whiteout_mode == "overlay":
            return overlay_changes(upper, lowers)
        if not lowers:
            empty = self.tmp / f"empty-{uuid.uuid4().hex}"
            empty.mkdir()
            try:
                return native_changes(empty, upper)
            finally:
                empty.rmdir()
        return native_changes(lowers[0], upper)

    def export_container(self, container_key: str, out: BinaryIO) -> None:
        upper = self.snapshots.upper_path(container_key)
        lowers = self.snapshots.lower_paths(container_key)
        if self.snapshots.whiteout_mode == "overlay":
            export_merged([upper, *lowers], out)
        else:
            export_merged([upper], out)

    def _container_diff(self, container_key: str, out: BinaryIO) -> None:
        upper = self.snapshots.upper_path(container_key)
        lowers = self.snapshots.lower_paths(container_key)
        if self.snapshots.whiteout_mode == "overlay":
            diff_to_tar(upper, out, lowers)
        elif lowers:
            diff_trees(lowers[0], upper, out)
        else:
            empty = self.tmp / f"empty-{uuid.uuid4().hex}"
            empty.mkdir()
            try:
                diff_trees(empty, upper, out)
            finally:
                empty.rmdir()

    def commit(
        self,
        container_key: str,
        parent_image: str,
        *,
        ref: str | None,
        config: dict[str, Any],
        comment: str,
        author: str,
        changes: builtins.list[str],
    ) -> str:
        """`docker commit`: the container's changes as a new layer on `parent_image`, with
        `config` (the container's config, as the image's `config`) and `changes` applied."""
        parent = self.resolve(parent_image)
        with tempfile.NamedTemporaryFile(dir=self.tmp, prefix="commit-") as tmp:
            self._container_diff(container_key, tmp)  # type: ignore[arg-type]
            tmp.flush()
            desc = self._ingest_layer_file(Path(tmp.name))
        parent_chain = str(parent.chain_ids[-1]) if parent.chain_ids else ""
        diff_id = desc.digest  # an uncompressed layer's digest is its diff id
        chain = chain_ids([*parent.diff_ids, diff_id])[-1]
        if not self._committed(str(chain)):
            self._unpack_one(desc, diff_id, str(chain), parent_chain)
        now = now_rfc3339()
        new = json.loads(json.dumps(parent.config))
        new["config"] = apply_changes(
            config if config is not None else dict(parent.config.get("config") or {}), changes
        )
        new["created"] = now
        new["docker_version"] = "skiff"
        new.pop("container", None)
        new.pop("container_config", None)
        if author:
            new["author"] = author
        else:
            new.pop("author", None)
        if comment:
            new["comment"] = comment
        else:
            new.pop("comment", None)
        cmd = (config or {}).get("Cmd") or []
        hist: dict[str, Any] = {"created": now}
        if author:
            hist["author"] = author
        hist["created_by"] = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
        if comment:
            hist["comment"] = comment
        new["history"] = [*list(new.get("history") or []), hist]
        new["rootfs"] = {
            "type": "layers",
            "diff_ids": [*[str(d) for d in parent.diff_ids], str(diff_id)],
        }
        return self._write_image(
            new, [*parent.layers, desc], [*parent.chain_ids, chain], ref, parent=parent.id
        ).id

    # ------------------------------------------------------------------ archives
    def load(
        self, fileobj: BinaryIO, progress: Callable[[str], None] | None = None
    ) -> builtins.list[str]:
        """`docker load` of a docker-archive (Docker 25+ with its OCI layout, or older) or an OCI
        layout tarball. Returns what was loaded: familiar names (`busybox:latest`), and ids
        (`sha256:…`) of images that came without a name."""
        import errno

        from skiff.errors import Unavailable
        from skiff.images.archive import load_archive

        try:
            with self.lease("load"):  # blobs it finds present stay until it has registered
                return load_archive(self, fileobj, progress)
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise Unavailable(
                    f"load: writing to the image store {self.data_root}: {os.strerror(err.errno)}"
                ) from None
            raise

    def save(self, refs: builtins.list[str], out: BinaryIO) -> None:
        """`docker save`: a docker-archive as Docker 25+ writes it (manifest.json, repositories,
        and an OCI layout: oci-layout, index.json, blobs/)."""
        from skiff.images.archive import save_archive

        save_archive(self, refs, out)

    # ------------------------------------------------------------------ bootstrap
    def bootstrap_busybox(self, ref: str = "busybox:latest") -> str:
        from skiff.images.bootstrap import bootstrap_busybox

        return bootstrap_busybox(self, ref)

    def bootstrap_debian(self, suite: str = "bookworm", ref: str | None = None) -> str:
        from skiff.images.bootstrap import bootstrap_debian

        return bootstrap_debian(self, suite, ref or f"debian:{suite}")


def chain_ids_from(parent_chain: str, diff_id: Digest) -> Digest:
    """The chain id of `diff_id` on top of the layer stack whose chain id is `parent_chain`."""
    import hashlib

    return Digest("sha256", hashlib.sha256(f"{parent_chain} {diff_id}".encode()).hexdigest())
