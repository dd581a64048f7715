import io
import os
from pathlib import Path

import pytest

from skiff.content.store import ContentStore
from skiff.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable
from skiff.types import mediatypes as mt
from skiff.types.digest import Digest
from skiff.types.image import Descriptor, Index, Manifest, canonical_json


def test_ingest_read_list_delete(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    d = cs.ingest(b"hello")
    assert d == Digest.of_bytes(b"hello")
    assert cs.has(d) and cs.size(d) == 5 and cs.read(d) == b"hello"
    assert cs.path(d).read_bytes() == b"hello"
    assert list(cs.list()) == [(d, 5)]
    assert cs.ingest(io.BytesIO(b"hello"), d) == d  # existing is fine
    cs.delete(d)
    assert not cs.has(d)
    with pytest.raises(NotFound):
        cs.size(d)
    with pytest.raises(NotFound):
        cs.delete(d)


def test_sha512(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    want = Digest.of_bytes(b"x" * 100, "sha512")
    assert cs.ingest(b"x" * 100, want) == want
    assert cs.read(want) == b"x" * 100


def test_mismatch_removes_the_ingest(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    wrong = Digest.of_bytes(b"other")
    w = cs.writer("ref1", wrong)
    w.write(b"data")
    with pytest.raises(InvalidArgument) as exc:
        w.commit()
    assert f"digest mismatch: expected {wrong}, got {Digest.of_bytes(b'data')}" in str(exc.value)
    assert not cs.has(Digest.of_bytes(b"data"))
    assert list(cs.ingests()) == []
    w = cs.writer("ref2")
    w.write(b"abc")
    with pytest.raises(InvalidArgument) as exc:
        w.commit(size=4)
    assert "size mismatch" in str(exc.value)
    assert list(cs.list()) == []


def test_resumable_ingest(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    data = os.urandom(3 << 20)
    want = Digest.of_bytes(data)
    w = cs.writer("pull-layer", want, len(data))
    w.write(data[:1000])
    w.close()
    assert not cs.has(want)
    assert list(cs.ingests()) == [("pull-layer", 1000)]
    w = cs.writer("pull-layer", want, len(data))
    assert w.offset == 1000
    w.write(data[w.offset :])
    assert w.commit() == want
    assert cs.read(want) == data
    assert list(cs.ingests()) == []
    with pytest.raises(AlreadyExists):
        cs.writer("again", want)


def test_one_writer_per_ref(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    w = cs.writer("busy")
    with pytest.raises(Unavailable):
        cs.writer("busy")
    w.abort()
    cs.writer("busy").abort()
    assert cs.prune_ingests() == 0


def test_gc_follows_indexes_manifests_configs(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    layer = cs.ingest(b"layer-bytes")
    shared = cs.ingest(b"shared-layer")
    cfg = cs.ingest(canonical_json({"rootfs": {"type": "layers", "diff_ids": []}}))
    m = Manifest(
        Descriptor(mt.OCI_CONFIG, cfg, cs.size(cfg)),
        (Descriptor(mt.OCI_LAYER, layer, 11), Descriptor(mt.OCI_LAYER, shared, 12)),
    )
    mdig = cs.ingest(m.to_bytes())
    idx = Index((Descriptor(mt.OCI_MANIFEST, mdig, cs.size(mdig)),))
    idig = cs.ingest(idx.to_bytes())
    other_cfg = cs.ingest(b'{"rootfs": {"type": "layers"}, "x": 1}')
    m2 = Manifest(Descriptor(mt.OCI_CONFIG, other_cfg, 1), (Descriptor(mt.OCI_LAYER, shared, 12),))
    m2dig = cs.ingest(m2.to_bytes())
    garbage = cs.ingest(b"garbage")
    deleted = cs.gc([idig], grace_seconds=0)
    assert set(deleted) == {other_cfg, m2dig, garbage}
    assert all(cs.has(d) for d in (idig, mdig, cfg, layer, shared))
    assert cs.gc([idig], grace_seconds=0) == []
    assert set(cs.gc([], grace_seconds=0)) == {idig, mdig, cfg, layer, shared}


def test_gc_keeps_blobs_committed_meanwhile(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    fresh = cs.ingest(b"just pulled, manifest not registered yet")
    assert cs.gc([]) == []  # within the grace period
    assert cs.has(fresh)
    assert cs.gc([], grace_seconds=0) == [fresh]
