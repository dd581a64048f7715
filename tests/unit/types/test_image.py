import json

import pytest

from skiff.errors import InvalidArgument, NotFound
from skiff.types import mediatypes as mt
from skiff.types.digest import Digest
from skiff.types.image import (
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    chain_ids,
    select_platform,
)

A = Digest.of_bytes(b"a")
B = Digest.of_bytes(b"b")


def _desc(platform: dict | None, media: str = mt.OCI_MANIFEST, data: bytes = b"x") -> dict:
    d = {"mediaType": media, "digest": str(Digest.of_bytes(data)), "size": 1}
    if platform is not None:
        d["platform"] = platform
    return d


def test_manifest_round_trip_docker_and_oci() -> None:
    for media, cfg, layer in (
        (mt.OCI_MANIFEST, mt.OCI_CONFIG, mt.OCI_LAYER_GZIP),
        (mt.DOCKER_MANIFEST, mt.DOCKER_CONFIG, mt.DOCKER_LAYER_GZIP),
    ):
        doc = {
            "schemaVersion": 2,
            "mediaType": media,
            "config": {"mediaType": cfg, "digest": str(A), "size": 3},
            "layers": [{"mediaType": layer, "digest": str(B), "size": 7}],
        }
        m = Manifest.parse(json.dumps(doc))
        assert m.config.digest == A and m.layers[0].size == 7 and m.media_type == media
        assert Manifest.parse(m.to_bytes()) == m


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ({"schemaVersion": 1}, "schemaVersion"),
        ({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST}, "missing config"),
        ({"schemaVersion": 2, "config": {"digest": "sha256:zz", "size": 1}}, "invalid digest"),
        ({"schemaVersion": 2, "config": {"digest": str(A), "size": -1}}, "non-negative"),
        ({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "config": {}}, "unexpected mediaType"),
    ],
)
def test_bad_manifests(doc: dict, why: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        Manifest.parse(json.dumps(doc))
    assert why in str(exc.value)


def test_select_platform() -> None:
    index = Index.parse(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mt.DOCKER_MANIFEST_LIST,
                "manifests": [
                    _desc({"os": "linux", "architecture": "arm", "variant": "v6"}, data=b"armv6"),
                    _desc({"os": "linux", "architecture": "arm", "variant": "v7"}, data=b"armv7"),
                    _desc({"os": "linux", "architecture": "arm64", "variant": "v8"}, data=b"arm64"),
                    _desc({"os": "unknown", "architecture": "unknown"}, data=b"attestation"),
                    _desc({"os": "linux", "architecture": "amd64"}, data=b"amd64"),
                    _desc({"os": "windows", "architecture": "amd64"}, data=b"win"),
                ],
            }
        )
    )
    assert select_platform(index).digest == Digest.of_bytes(b"amd64")
    assert select_platform(index, Platform("linux", "arm")).digest == Digest.of_bytes(b"armv7")
    assert select_platform(index, Platform("linux", "arm", "v6")).digest == Digest.of_bytes(
        b"armv6"
    )
    assert select_platform(index, Platform.parse("linux/arm64")).digest == Digest.of_bytes(b"arm64")
    with pytest.raises(NotFound) as exc:
        select_platform(index, Platform("linux", "s390x"))
    assert "no matching manifest for linux/s390x" in str(exc.value)


def test_config_and_chain_ids() -> None:
    cfg = ImageConfig.parse(
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [str(A), str(B)]},
            }
        )
    )
    assert cfg.diff_ids == [A, B]
    chains = chain_ids(cfg.diff_ids)
    assert chains[0] == A
    assert chains[1] == Digest.of_bytes(f"{A} {B}".encode())
    with pytest.raises(InvalidArgument):
        ImageConfig.parse(b'{"rootfs": {"type": "foo"}}')


def test_descriptor_platform_round_trip() -> None:
    d = Descriptor.from_json(_desc({"os": "linux", "architecture": "arm64", "variant": "v8"}))
    assert d.platform == Platform("linux", "arm64", "v8")
    assert Descriptor.from_json(d.to_json()) == d
