"""Image formats as values: descriptors, manifests, indexes, image configs and platforms.

Covers the OCI image spec (manifest, index, config) and Docker's schema2 (manifest, manifest
list, container config), which share one JSON shape and differ in media types. Parsing
validates what skiff relies on; the original bytes stay authoritative for digests, so a
parsed value is never re-serialised to recompute an existing digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from skiff.errors import InvalidArgument, NotFound
from skiff.types import mediatypes as mt
from skiff.types.digest import Digest


def canonical_json(obj: Any) -> bytes:
    """Compact JSON, key order as given (what skiff writes and hashes)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _load(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"{what}: invalid JSON: {e}")
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Platform:
        return cls(
            str(obj.get("os", "")),
            str(obj.get("architecture", "")),
            obj.get("variant") or None,
            obj.get("os.version") or None,
        )

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`linux/amd64`, `linux/arm64/v8`."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidArgument(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.variant:
            out["variant"] = self.variant
        return out

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, obj: Any, what: str = "descriptor") -> Descriptor:
        if not isinstance(obj, dict):
            raise InvalidArgument(f"{what}: expected an object")
        try:
            digest = Digest.parse(str(obj["digest"]))
            size = obj["size"]
        except KeyError as e:
            raise InvalidArgument(f"{what}: missing field {e.args[0]!r}")
        except InvalidArgument as e:
            raise e.wrap(what)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArgument(f"{what}: size must be a non-negative integer, got {size!r}")
        platform = obj.get("platform")
        return cls(
            str(obj.get("mediaType", "")),
            digest,
            size,
            dict(obj.get("annotations") or {}),
            Platform.from_json(platform) if isinstance(platform, dict) else None,
            tuple(obj.get("urls") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    """An OCI image manifest or a Docker schema2 manifest."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = mt.OCI_MANIFEST
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes | str) -> Manifest:
        obj = _load(data, "manifest")
        if obj.get("schemaVersion") != 2:
            raise InvalidArgument(
                f"manifest: unsupported schemaVersion {obj.get('schemaVersion')!r} (only 2)"
            )
        media_type = obj.get("mediaType") or mt.OCI_MANIFEST
        if media_type not in mt.MANIFESTS:
            raise InvalidArgument(f"manifest: unexpected mediaType {media_type!r}")
        if "config" not in obj:
            raise InvalidArgument("manifest: missing config")
        layers = obj.get("layers") or []
        if not isinstance(layers, list):
            raise InvalidArgument("manifest: layers must be a list")
        return cls(
            Descriptor.from_json(obj["config"], "manifest: config"),
            tuple(
                Descriptor.from_json(layer, f"manifest: layers[{i}]")
                for i, layer in enumerate(layers)
            ),
            str(media_type),
            dict(obj.get("annotations") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())


@dataclass(frozen=True, slots=True)
class Index:
    """An OCI image index or a Docker manifest list."""

    manifests: tuple[Descriptor, ...]
    media_type: str = mt.OCI_INDEX
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes | str) -> Index:
        obj = _load(data, "index")
        if obj.get("schemaVersion") != 2:
            raise InvalidArgument(f"index: unsupported schemaVersion {obj.get('schemaVersion')!r}")
        media_type = obj.get("mediaType") or mt.OCI_INDEX
        if media_type not in mt.INDEXES:
            raise InvalidArgument(f"index: unexpected mediaType {media_type!r}")
        manifests = obj.get("manifests") or []
        if not isinstance(manifests, list):
            raise InvalidArgument("index: manifests must be a list")
        return cls(
            tuple(
                Descriptor.from_json(m, f"index: manifests[{i}]") for i, m in enumerate(manifests)
            ),
            str(media_type),
            dict(obj.get("annotations") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "manifests": [m.to_json() for m in self.manifests],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())


def media_type_of(data: bytes) -> str:
    """The mediaType a manifest/index document declares, or guessed from its fields."""
    obj = _load(data, "manifest")
    declared = obj.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if "manifests" in obj:
        return mt.OCI_INDEX
    return mt.OCI_MANIFEST


@dataclass(slots=True)
class ImageConfig:
    """An image config (OCI `config.v1+json` / Docker `container.image.v1+json`).

    `raw` is the whole document; the fields skiff uses are read from it. `to_bytes()` gives
    the canonical form for configs skiff writes; a config read from a blob keeps its bytes.
    """

    raw: dict[str, Any]

    @classmethod
    def parse(cls, data: bytes | str) -> ImageConfig:
        obj = _load(data, "image config")
        rootfs = obj.get("rootfs")
        if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
            raise InvalidArgument('image config: rootfs.type must be "layers"')
        ids = rootfs.get("diff_ids") or []
        if not isinstance(ids, list):
            raise InvalidArgument("image config: rootfs.diff_ids must be a list")
        for i, d in enumerate(ids):
            try:
                Digest.parse(str(d))
            except InvalidArgument as e:
                raise e.wrap(f"image config: rootfs.diff_ids[{i}]")
        return cls(obj)

    @property
    def diff_ids(self) -> list[Digest]:
        return [Digest.parse(str(d)) for d in self.raw["rootfs"].get("diff_ids") or []]

    @property
    def config(self) -> dict[str, Any]:
        c = self.raw.get("config")
        return c if isinstance(c, dict) else {}

    @property
    def history(self) -> list[dict[str, Any]]:
        h = self.raw.get("history")
        return [x for x in h if isinstance(x, dict)] if isinstance(h, list) else []

    @property
    def created(self) -> str:
        return str(self.raw.get("created") or "")

    @property
    def architecture(self) -> str:
        return str(self.raw.get("architecture") or "")

    @property
    def os(self) -> str:
        return str(self.raw.get("os") or "")

    def to_bytes(self) -> bytes:
        return canonical_json(self.raw)


def chain_ids(diff_ids: Iterable[Digest]) -> list[Digest]:
    """ChainID of every prefix of a layer stack (OCI image spec: ChainID(L0|L1) = H(C0 + " " + L1))."""
    out: list[Digest] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            text = f"{out[-1]} {d}".encode()
            out.append(Digest("sha256", hashlib.sha256(text).hexdigest()))
    return out


_DEFAULT_VARIANTS = {"arm64": "v8", "arm": "v7"}


def _variant(p: Platform) -> str | None:
    return p.variant or _DEFAULT_VARIANTS.get(p.architecture)


def select_platform(index: Index, want: Platform = Platform("linux", "amd64")) -> Descriptor:
    """The manifest of `index` for platform `want` (os and architecture match; variant when given
    or when the architecture has a default one). An exact variant match wins over none."""
    best: Descriptor | None = None
    for desc in index.manifests:
        p = desc.platform
        if p is None or p.os != want.os or p.architecture != want.architecture:
            continue
        if desc.media_type not in mt.MANIFESTS and desc.media_type not in mt.INDEXES:
            continue
        want_variant = _variant(want)
        if want_variant is not None and _variant(p) not in (want_variant, None):
            continue
        if want_variant is not None and _variant(p) == want_variant:
            return desc
        if best is None:
            best = desc
    if best is None:
        raise NotFound(f"no matching manifest for {want} in the manifest list entries")
    return best


__all__ = [
    "Platform",
    "Descriptor",
    "Manifest",
    "Index",
    "ImageConfig",
    "canonical_json",
    "chain_ids",
    "media_type_of",
    "select_platform",
]
