"""Every local image operation on a real store: import, tag/untag, inspect/history shapes,
remove with its conflicts, prune, save/load round trips (also OCI layout tarballs made by
skopeo), export, concurrent use."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from skiff.errors import Conflict, InvalidArgument, NotFound
from skiff.images.store import ImageStore


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "root")


@pytest.fixture
def rootfs_tar(tmp_path: Path, busybox_rootfs: Path) -> Path:
    out = tmp_path / "rootfs.tar.gz"
    subprocess.run(
        ["tar", "--numeric-owner", "-C", str(busybox_rootfs), "-czf", str(out), "."], check=True
    )
    return out


def test_import_inspect_history(store: ImageStore, rootfs_tar: Path) -> None:
    with open(rootfs_tar, "rb") as f:
        image_id = store.import_rootfs(
            f,
            "imp:1",
            [
                'CMD ["sh"]',
                "ENV A=b C=d",
                "WORKDIR /srv",
                "EXPOSE 80 53/udp",
                "USER nobody",
                'LABEL a=1 "b=two words"',
                'ENTRYPOINT ["/bin/sh", "-c"]',
            ],
            "my message",
        )
    info = store.inspect("imp:1")
    assert info["Id"] == image_id and info["RepoTags"] == ["imp:1"] and info["RepoDigests"] == []
    assert info["Config"] == {
        "Cmd": ["sh"],
        "Env": ["A=b", "C=d"],
        "WorkingDir": "/srv",
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
        "User": "nobody",
        "Labels": {"a": "1", "b": "two words"},
        "Entrypoint": ["/bin/sh", "-c"],
    }
    assert (
        info["Comment"] == "my message"
        and info["Os"] == "linux"
        and info["Architecture"] == "amd64"
    )
    assert (
        info["GraphDriver"]["Name"] == "overlay2"
        and Path(info["GraphDriver"]["Data"]["UpperDir"]).is_dir()
    )
    assert info["RootFS"]["Type"] == "layers" and len(info["RootFS"]["Layers"]) == 1
    assert info["Size"] > 1_000_000 and info["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    (h,) = store.history(image_id)
    assert (
        h["Id"] == image_id
        and h["Comment"] == "my message"
        and h["Tags"] == ["imp:1"]
        and h["Size"] == info["Size"]
    )
    # every image can be pushed: manifest, config, layers are in the content store
    digest, media = store.manifest_of("imp:1")
    manifest = json.loads(store.content.read(digest))
    assert media == manifest["mediaType"]
    assert all(
        store.content.has(
            __import__("skiff.types.digest", fromlist=["Digest"]).Digest.parse(d["digest"])
        )
        for d in [manifest["config"], *manifest["layers"]]
    )
    with pytest.raises(InvalidArgument):
        store.import_rootfs(io.BytesIO(b""), None, ["FROM x"])


def test_resolve_forms_and_tags(store: ImageStore) -> None:
    image_id = store.bootstrap_busybox()
    short = image_id.removeprefix("sha256:")[:12]
    for text in (
        image_id,
        image_id.removeprefix("sha256:"),
        short,
        short[:4],
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
    ):
        assert store.resolve(text).id == image_id, text
    with pytest.raises(NotFound) as exc:
        store.resolve("nosuch:tag")
    assert str(exc.value) == "No such image: nosuch:tag"
    store.tag("busybox", "localhost:5000/mine/box:v1")
    assert store.resolve("localhost:5000/mine/box:v1").id == image_id
    assert sorted(store.resolve(image_id).repo_tags) == [
        "busybox:latest",
        "localhost:5000/mine/box:v1",
    ]
    with pytest.raises(InvalidArgument):
        store.tag("busybox", "Bad:Name")
    store.untag("localhost:5000/mine/box:v1")
    with pytest.raises(NotFound):
        store.untag("localhost:5000/mine/box:v1")
    assert store.bootstrap_busybox() == image_id  # deterministic


def test_remove_semantics(store: ImageStore) -> None:
    image_id = store.bootstrap_busybox()
    store.tag(image_id, "other:1")
    assert store.remove("other:1") == [{"Untagged": "other:1"}]
    store.tag(image_id, "other:2")
    with pytest.raises(Conflict) as exc:
        store.remove(image_id)
    assert "referenced in multiple repositories" in str(exc.value)
    # untagging while another tag is left is fine even when a container uses the image
    assert store.remove("busybox", in_use=lambda i: i == image_id) == [
        {"Untagged": "busybox:latest"}
    ]
    with pytest.raises(Conflict) as exc:
        store.remove("other:2", in_use=lambda i: i == image_id)
    assert 'unable to remove repository reference "other:2" (must force)' in str(exc.value)
    assert store.resolve("other:2").id == image_id  # nothing changed
    store.tag(image_id, "busybox")
    out = store.remove(image_id, force=True)
    assert (
        {"Deleted": image_id} in out
        and {"Untagged": "busybox:latest"} in out
        and {"Untagged": "other:2"} in out
    )
    assert store.list() == []
    assert list(store.snapshots.walk()) == []
    assert list(store.content.list()) == []


def test_container_keeps_layers_and_prune(store: ImageStore) -> None:
    image_id = store.bootstrap_busybox()
    store.prepare_container_rootfs(image_id, "ctr")
    assert store.prepare_container_rootfs(image_id, "ctr") == store.container_mounts(
        "ctr"
    )  # idempotent
    (store.snapshots.upper_path("ctr") / "new").write_text("x")
    assert store.changes("ctr") == [{"Path": "/new", "Kind": 1}]
    dangling = store.commit("ctr", image_id, ref=None, config={}, comment="", author="", changes=[])
    assert store.resolve(dangling).repo_tags == []
    pruned = store.prune(in_use=lambda i: False)["ImagesDeleted"]
    assert pruned[0] == {"Deleted": dangling} and len(pruned) == 2  # the image and its own layer
    assert dangling not in [r.id for r in store.list()]
    assert store.prune(dangling_only=False, in_use=lambda i: i == image_id) == {
        "ImagesDeleted": None,
        "SpaceReclaimed": 0,
    }
    store.remove_container_rootfs("ctr")
    res = store.prune(dangling_only=False)
    assert {"Untagged": "busybox:latest"} in res["ImagesDeleted"] and res[
        "SpaceReclaimed"
    ] > 1_000_000
    assert store.list() == [] and list(store.snapshots.walk()) == []


def test_save_load_round_trip_keeps_ids_and_digests(tmp_path: Path, store: ImageStore) -> None:
    base = store.bootstrap_busybox()
    store.prepare_container_rootfs(base, "c")
    (store.snapshots.upper_path("c") / "etc" / "motd").parent.mkdir(exist_ok=True)
    (store.snapshots.upper_path("c") / "etc" / "motd").write_text("hello\n")
    child = store.commit(
        "c",
        base,
        ref="child:1",
        config={"Cmd": ["cat", "/etc/motd"]},
        comment="add motd",
        author="t",
        changes=[],
    )
    buf = io.BytesIO()
    store.save(["child:1", "busybox", base], buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        names = tf.getnames()
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        index = json.load(tf.extractfile("index.json"))  # type: ignore[arg-type]
    assert {"oci-layout", "index.json", "manifest.json", "repositories"} <= set(names)
    assert {tuple(m["RepoTags"] or []) for m in manifest} == {("child:1",), ("busybox:latest",)}
    assert all(layer.startswith("blobs/sha256/") for m in manifest for layer in m["Layers"])
    assert {m["annotations"]["io.containerd.image.name"] for m in index["manifests"]} == {
        "docker.io/library/child:1",
        "docker.io/library/busybox:latest",
    }
    other = ImageStore(tmp_path / "other", snapshotter="native")
    buf.seek(0)
    assert sorted(other.load(buf)) == ["busybox:latest", "child:1"]
    for ref in ("child:1", "busybox:latest"):
        a, b = store.inspect(ref), other.inspect(ref)
        assert a["Id"] == b["Id"] and a["RootFS"] == b["RootFS"] and a["Config"] == b["Config"]
        assert store.manifest_of(ref) == other.manifest_of(ref)
    assert other.resolve("child:1").id == child
    # `docker load` also takes compressed archives
    import gzip

    third = ImageStore(tmp_path / "third")
    assert sorted(third.load(io.BytesIO(gzip.compress(buf.getvalue(), 1)))) == [
        "busybox:latest",
        "child:1",
    ]
    assert other.resolve("child:1").parent == ""  # parents are local knowledge, as in Docker


def test_oci_layout_tarball_from_skopeo(tmp_path: Path, store: ImageStore) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    image_id = store.bootstrap_busybox()
    saved = tmp_path / "saved.tar"
    with open(saved, "wb") as f:
        store.save(["busybox"], f)
    oci = tmp_path / "oci.tar"
    r = subprocess.run(
        [
            "skopeo",
            "copy",
            "--dest-compress",
            f"docker-archive:{saved}",
            f"oci-archive:{oci}:example.com/busy:oci",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    with tarfile.open(oci) as tf:
        assert "manifest.json" not in tf.getnames() and "index.json" in tf.getnames()
    other = ImageStore(tmp_path / "other")
    with open(oci, "rb") as f:
        assert other.load(f) == ["example.com/busy:oci"]
    rec = other.resolve("example.com/busy:oci")
    # skopeo rewrites the config as OCI JSON: the id is that config's digest; the layers agree
    assert rec.id == str(rec.config_digest) and rec.id != image_id
    assert rec.config["config"]["Cmd"] == ["sh"]
    assert rec.layers[0].media_type.endswith("gzip")
    assert rec.diff_ids == store.resolve(image_id).diff_ids


def test_export_container_and_concurrency(tmp_path: Path, store: ImageStore) -> None:
    image_id = store.bootstrap_busybox()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(5):
                store.tag(image_id, f"t{n}:{i}")
                store.prepare_container_rootfs(image_id, f"c{n}-{i}")
                assert store.resolve(f"t{n}:{i}").id == image_id
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.resolve(image_id).repo_tags) == 21
    (store.snapshots.upper_path("c0-0") / "bin" / "sh").unlink() if (
        store.snapshots.upper_path("c0-0") / "bin"
    ).exists() else None
    buf = io.BytesIO()
    store.export_container("c0-0", buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        names = set(tf.getnames())
    assert "bin/busybox" in names and "etc/passwd" in names


def test_gc_keeps_what_images_and_containers_use(store: ImageStore) -> None:
    from skiff.types.digest import Digest

    image_id = store.bootstrap_busybox()
    stray = store.content.ingest(b"stray blob")
    in_flight = store.content.ingest(b"pull in progress")
    store.snapshots.prepare("extract-orphan")
    store.snapshots.commit("sha256:" + "e" * 64, "extract-orphan")
    res = store.gc(extra_roots=[in_flight], grace_seconds=0)
    assert res == {"Blobs": [str(stray)], "Snapshots": ["sha256:" + "e" * 64]}
    assert store.content.has(in_flight) and store.resolve("busybox").id == image_id
    digest, _ = store.manifest_of(image_id)
    assert store.content.has(digest) and store.content.has(Digest.parse(image_id))
    assert store.gc(grace_seconds=0) == {"Blobs": [str(in_flight)], "Snapshots": []}
