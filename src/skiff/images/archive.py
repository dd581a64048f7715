"""docker-archive and OCI-layout tarballs: `docker save` / `docker load`.

Docker 25+ writes both formats in one tar: `manifest.json` + `repositories` (what older
Dockers read) beside an OCI image layout (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`),
the manifest.json paths pointing into blobs/. Older Dockers wrote `<id>.json` configs and
`<v1id>/layer.tar` layers (symlinked when shared). `load_archive` reads all three; blobs are
streamed into the content store as the tar is read, never extracted to disk.
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
import uuid
from collections.abc import Callable
from typing import Any, BinaryIO

from skiff.errors import AlreadyExists, InvalidArgument, NotFound
from skiff.images.layer import ForwardReader, open_decompressed
from skiff.images.store import ImageRecord, ImageStore
from skiff.types import mediatypes as mt
from skiff.types.digest import Digest
from skiff.types.image import Descriptor, ImageConfig, Index, Manifest
from skiff.types.reference import Reference, parse_reference

_SMALL = 16 << 20
_CHUNK = 1 << 20
_META = ("manifest.json", "index.json", "repositories", "oci-layout")


class _Archive:
    def __init__(self) -> None:
        self.blobs: dict[str, tuple[Digest, int]] = {}  # path → blob in the content store
        self.small: dict[str, bytes] = {}
        self.links: dict[str, str] = {}

    def resolve(self, path: str) -> str:
        path = posixpath.normpath(path).lstrip("/")
        for _ in range(16):
            if path in self.links:
                path = self.links[path]
            else:
                return path
        raise InvalidArgument(f"load: {path}: too many levels of symbolic links")

    def blob(self, path: str) -> tuple[Digest, int]:
        p = self.resolve(path)
        if p in self.blobs:
            return self.blobs[p]
        raise InvalidArgument(f"load: the archive has no file {path!r}")


def _ingest(
    store: ImageStore, reader: ForwardReader, ti: tarfile.TarInfo, expected: Digest | None
) -> Digest:
    reader.seek(ti.offset_data)
    if expected is not None and store.content.has(expected):
        return expected
    try:
        w = store.content.writer(f"load-{uuid.uuid4().hex}", expected, ti.size)
    except AlreadyExists:
        assert expected is not None
        return expected
    try:
        left = ti.size
        while left:
            chunk = reader.read(min(left, _CHUNK))
            if not chunk:
                raise InvalidArgument(f"load: {ti.name}: truncated archive")
            w.write(chunk)
            left -= len(chunk)
        return w.commit(ti.size, expected)
    except BaseException:
        w.abort()
        raise


def _read_archive(store: ImageStore, fileobj: BinaryIO) -> _Archive:
    arc = _Archive()
    reader = ForwardReader(open_decompressed(fileobj, ""))
    try:
        tf = tarfile.open(fileobj=reader, mode="r:")  # type: ignore[call-overload]
    except tarfile.ReadError as e:
        raise InvalidArgument(f"load: not a tar archive: {e}")
    while True:
        try:
            ti = tf.next()
        except tarfile.TarError as e:
            raise InvalidArgument(f"load: corrupt archive: {e}")
        if ti is None:
            break
        name = posixpath.normpath(ti.name).lstrip("/")
        if name == ".." or name.startswith("../"):
            raise InvalidArgument(f"load: entry {ti.name!r} points outside the archive")
        if ti.issym():
            arc.links[name] = posixpath.normpath(
                posixpath.join(posixpath.dirname(name), ti.linkname)
            ).lstrip("/")
            continue
        if ti.islnk():
            arc.links[name] = posixpath.normpath(ti.linkname).lstrip("/")
            continue
        if not ti.isreg():
            continue
        parts = name.split("/")
        if (
            name in _META
            or (len(parts) == 1 and name.endswith(".json"))
            or parts[-1] in ("json", "VERSION")
        ):
            if ti.size > _SMALL:
                raise InvalidArgument(
                    f"load: {name}: {ti.size} bytes is too large for a metadata file"
                )
            reader.seek(ti.offset_data)
            data = reader.read(ti.size)
            arc.small[name] = data
            if len(parts) == 1 and name.endswith(".json") and name not in _META:
                arc.blobs[name] = (store.content.ingest(data), len(data))
            continue
        expected = None
        if len(parts) == 3 and parts[0] == "blobs":
            try:
                expected = Digest.parse(f"{parts[1]}:{parts[2]}")
            except InvalidArgument as e:
                raise e.wrap(f"load: {name}")
        arc.blobs[name] = (_ingest(store, reader, ti, expected), ti.size)
    reader.drain()
    return arc


def _layer_media_type(store: ImageStore, digest: Digest) -> str:
    with store.content.open(digest) as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        return mt.OCI_LAYER_GZIP
    if magic == b"\x28\xb5\x2f\xfd":
        return mt.OCI_LAYER_ZSTD
    return mt.OCI_LAYER


def _names_from_annotations(annotations: dict[str, str]) -> list[Reference]:
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        value = annotations.get(key)
        if not value:
            continue
        if key == "org.opencontainers.image.ref.name" and "/" not in value and ":" not in value:
            continue  # just a tag, with no repository to put it in
        try:
            return [parse_reference(value)]
        except InvalidArgument:
            continue
    return []


def load_archive(
    store: ImageStore, fileobj: BinaryIO, progress: Callable[[str], None] | None = None
) -> list[str]:
    arc = _read_archive(store, fileobj)
    manifest_json: list[dict[str, Any]] = []
    if "manifest.json" in arc.small:
        try:
            manifest_json = json.loads(arc.small["manifest.json"])
        except ValueError as e:
            raise InvalidArgument(f"load: manifest.json: {e}")
        if not isinstance(manifest_json, list):
            raise InvalidArgument("load: manifest.json: expected a list")
    names_by_config: dict[Digest, list[Reference]] = {}
    for i, entry in enumerate(manifest_json):
        if not isinstance(entry, dict) or "Config" not in entry:
            raise InvalidArgument(f"load: manifest.json[{i}]: missing Config")
        cfg_digest, _ = arc.blob(str(entry["Config"]))
        names = [parse_reference(t) for t in entry.get("RepoTags") or []]
        names_by_config.setdefault(cfg_digest, []).extend(names)

    loaded: list[ImageRecord] = []
    if "index.json" in arc.small and (manifest_json or "oci-layout" in arc.small):
        index = Index.parse(arc.small["index.json"])
        done: dict[Digest, ImageRecord] = {}
        for desc in index.manifests:
            if not store.content.has(desc.digest):
                raise InvalidArgument(
                    f"load: index.json names {desc.digest}, which the archive does not hold"
                )
            config_digest = store.config_digest_of(desc.digest)
            if config_digest in done:
                continue
            names = names_by_config.get(config_digest) or [
                ref
                for d in index.manifests
                if store.config_digest_of(d.digest) == config_digest
                for ref in _names_from_annotations(d.annotations)
            ]
            rec = store.create_image(desc.digest, names, progress)
            done[config_digest] = rec
            loaded.append(rec)
    elif manifest_json:
        for i, entry in enumerate(manifest_json):
            cfg_digest, cfg_size = arc.blob(str(entry["Config"]))
            config = ImageConfig.parse(store.content.read(cfg_digest))
            layers = []
            for path in entry.get("Layers") or []:
                digest, size = arc.blob(str(path))
                layers.append(Descriptor(_layer_media_type(store, digest), digest, size))
            if len(layers) != len(config.diff_ids):
                raise InvalidArgument(
                    f"load: manifest.json[{i}]: {len(layers)} layers but the config has {len(config.diff_ids)} diff ids"
                )
            manifest = Manifest(
                Descriptor(mt.OCI_CONFIG, cfg_digest, cfg_size), tuple(layers), mt.OCI_MANIFEST
            )
            data = manifest.to_bytes()
            manifest_digest = store.content.ingest(data, Digest.of_bytes(data))
            names = [parse_reference(t) for t in entry.get("RepoTags") or []]
            loaded.append(store.create_image(manifest_digest, names, progress))
    else:
        raise InvalidArgument(
            "load: neither manifest.json nor an OCI layout (index.json) in the archive"
        )

    out: list[str] = []
    for rec in loaded:
        shown = [n.familiar_name() for n in names_by_config.get(rec.config_digest, [])]
        shown = shown or rec.repo_tags
        if shown:
            for n in shown:
                if n not in out:
                    out.append(n)
                    if progress is not None:
                        progress(f"Loaded image: {n}")
        elif rec.id not in out:
            out.append(rec.id)
            if progress is not None:
                progress(f"Loaded image ID: {rec.id}")
    return out


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = 0o644
    ti.mtime = 0
    tf.addfile(ti, io.BytesIO(data))


def _add_dir(tf: tarfile.TarFile, name: str) -> None:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    ti.mtime = 0
    tf.addfile(ti)


def save_archive(store: ImageStore, refs: list[str], out: BinaryIO) -> None:
    if not refs:
        raise InvalidArgument("save: no images given")
    images: dict[str, tuple[ImageRecord, list[Reference]]] = {}
    order: list[str] = []
    for text in refs:
        rec = store.resolve(text)
        if rec.id not in images:
            images[rec.id] = (rec, [])
            order.append(rec.id)
        tags = images[rec.id][1]
        by_id = rec.id.removeprefix("sha256:").startswith(text.removeprefix("sha256:"))
        if not by_id:
            ref = parse_reference(text)
            if ref.digest is None and ref not in tags:
                tags.append(ref)
    tf = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_CHUNK)
    tf.copybufsize = _CHUNK  # type: ignore[attr-defined]
    written: set[Digest] = set()
    _add_dir(tf, "blobs/")
    algs: set[str] = set()

    def blob_path(d: Digest) -> str:
        return f"blobs/{d.algorithm}/{d.hex}"

    def add_blob(d: Digest) -> None:
        if d in written:
            return
        if d.algorithm not in algs:
            algs.add(d.algorithm)
            _add_dir(tf, f"blobs/{d.algorithm}/")
        try:
            size = store.content.size(d)
        except NotFound as e:
            raise e.wrap("save")
        ti = tarfile.TarInfo(blob_path(d))
        ti.size = size
        ti.mode = 0o644
        ti.mtime = 0
        with store.content.open(d) as f:
            tf.addfile(ti, f)
        written.add(d)

    index_manifests: list[dict[str, Any]] = []
    manifest_json: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for image_id in order:
        rec, tags = images[image_id]
        for layer in rec.layers:
            add_blob(layer.digest)
        add_blob(rec.config_digest)
        add_blob(rec.manifest_digest)
        desc = {
            "mediaType": rec.manifest_media_type,
            "digest": str(rec.manifest_digest),
            "size": store.content.size(rec.manifest_digest),
        }
        if tags:
            for t in tags:
                index_manifests.append(
                    {
                        **desc,
                        "annotations": {
                            "io.containerd.image.name": str(t),
                            "org.opencontainers.image.ref.name": t.tag or "",
                        },
                    }
                )
                if rec.layers:
                    repositories.setdefault(t.familiar_repository(), {})[t.tag or "latest"] = (
                        rec.layers[-1].digest.hex
                    )
        else:
            index_manifests.append(desc)
        manifest_json.append(
            {
                "Config": blob_path(rec.config_digest),
                "RepoTags": [t.familiar_name() for t in tags] or None,
                "Layers": [blob_path(layer.digest) for layer in rec.layers],
            }
        )
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": index_manifests}
    _add_bytes(tf, "index.json", json.dumps(index, separators=(",", ":")).encode() + b"\n")
    _add_bytes(
        tf, "manifest.json", json.dumps(manifest_json, separators=(",", ":")).encode() + b"\n"
    )
    _add_bytes(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    if repositories:
        _add_bytes(
            tf, "repositories", json.dumps(repositories, separators=(",", ":")).encode() + b"\n"
        )
    tf.close()
