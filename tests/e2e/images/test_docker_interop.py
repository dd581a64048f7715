"""Images move between skiff and real Docker (Debian's dockerd 20.10 on a private socket)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

from skiff_test_threelayer import describe, docker_archive

from skiff.images.store import ImageStore


def test_docker_made_archive_loads_into_skiff(
    dockerd, tmp_path: Path, busybox_rootfs: Path
) -> None:
    rootfs_tar = tmp_path / "rootfs.tar"
    subprocess.run(
        ["tar", "--numeric-owner", "-C", str(busybox_rootfs), "-cf", str(rootfs_tar), "."],
        check=True,
    )
    dockerd.docker(
        "import",
        "--change",
        'CMD ["sh"]',
        "--change",
        "ENV A=b",
        str(rootfs_tar),
        "imported:docker",
    )
    want = dockerd.inspect("imported:docker")
    saved = dockerd.docker("save", "imported:docker").stdout
    with tarfile.open(fileobj=io.BytesIO(saved)) as tf:
        names = tf.getnames()
    assert "manifest.json" in names

    store = ImageStore(tmp_path / "skiff")
    assert store.load(io.BytesIO(saved)) == ["imported:docker"]
    got = store.inspect("imported:docker")
    assert got["Id"] == want["Id"]
    assert got["RootFS"]["Layers"] == want["RootFS"]["Layers"]
    assert got["Config"]["Cmd"] == ["sh"] and "A=b" in got["Config"]["Env"]
    assert got["Created"] == want["Created"]
    # the unpacked layer is the rootfs docker imported
    layer = store.snapshots.upper_path(str(store.resolve("imported:docker").chain_ids[0]))
    assert describe(layer) == describe(busybox_rootfs)


def test_skiff_save_loads_into_docker(dockerd, tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "skiff")
    image_id = store.bootstrap_busybox("skiffbox:1")
    ours = store.inspect(image_id)
    out = tmp_path / "saved.tar"
    with open(out, "wb") as f:
        store.save(["skiffbox:1"], f)
    r = dockerd.docker("load", "-i", str(out))
    assert b"Loaded image: skiffbox:1" in r.stdout
    theirs = dockerd.inspect("skiffbox:1")
    assert theirs["Id"] == image_id
    assert theirs["RootFS"]["Layers"] == ours["RootFS"]["Layers"]
    assert theirs["Config"]["Cmd"] == ["sh"]
    # and back: docker's save of it loads into a fresh skiff store with the same id
    again = ImageStore(tmp_path / "again")
    assert again.load(io.BytesIO(dockerd.docker("save", "skiffbox:1").stdout)) == ["skiffbox:1"]
    assert again.resolve("skiffbox:1").id == image_id


def test_three_layers_match_dockers_overlay2(
    dockerd, tmp_path: Path, three_layers: list[Path]
) -> None:
    archive = docker_archive(three_layers, tmp_path / "three.tar", tag="threelayer:docker")
    dockerd.docker("load", "-i", str(archive))
    data = dockerd.inspect("threelayer:docker")["GraphDriver"]["Data"]
    lowers = [data["UpperDir"], *data["LowerDir"].split(":")]
    docker_view = tmp_path / "docker-view"
    docker_view.mkdir()
    subprocess.run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            "lowerdir=" + ":".join(lowers),
            str(docker_view),
        ],
        check=True,
    )
    ours_view = tmp_path / "ours-view"
    ours_view.mkdir()
    try:
        theirs = describe(docker_view)
        store = ImageStore(tmp_path / "skiff")
        with open(archive, "rb") as f:
            store.load(f)
        rec = store.resolve("threelayer:docker")
        assert rec.id == dockerd.inspect("threelayer:docker")["Id"]
        ours_lowers = [str(store.snapshots.upper_path(str(c))) for c in reversed(rec.chain_ids)]
        subprocess.run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                "lowerdir=" + ":".join(ours_lowers),
                str(ours_view),
            ],
            check=True,
        )
        ours = describe(ours_view)
        # Docker writes sparse files densely; compare everything but allocation
        assert {
            k: (ours.get(k), theirs.get(k))
            for k in set(ours) | set(theirs)
            if ours.get(k) != theirs.get(k)
        } == {}
        assert (
            os.lstat(ours_view / "sparse/big").st_blocks
            < os.lstat(docker_view / "sparse/big").st_blocks
        )
    finally:
        subprocess.run(["umount", str(docker_view)], check=False)
        subprocess.run(["umount", str(ours_view)], check=False)


def test_skiff_commit_with_whiteouts_loads_into_docker_identically(
    dockerd, tmp_path: Path, three_layers: list[Path]
) -> None:
    archive = docker_archive(three_layers, tmp_path / "three.tar", tag="threelayer:base")
    store = ImageStore(tmp_path / "skiff")
    with open(archive, "rb") as f:
        store.load(f)
    base = store.resolve("threelayer:base").id
    box = tmp_path / "box"
    box.mkdir()
    opts = ",".join(store.prepare_container_rootfs(base, "box")[0].options)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(box)], check=True)
    try:
        subprocess.run(
            f"rm {box}/data/hard2 && rm -rf {box}/opq && mkdir {box}/opq && echo f > {box}/opq/fresh && echo v3 >> {box}/etc/conf",
            shell=True,
            check=True,
        )
    finally:
        subprocess.run(["umount", str(box)], check=True)
    new_id = store.commit(
        "box",
        base,
        ref="committed:docker",
        config={"Cmd": ["sh"]},
        comment="",
        author="",
        changes=[],
    )
    saved = tmp_path / "committed.tar"
    with open(saved, "wb") as f:
        store.save(["committed:docker"], f)
    dockerd.docker("load", "-i", str(saved))
    theirs_info = dockerd.inspect("committed:docker")
    assert theirs_info["Id"] == new_id
    data = theirs_info["GraphDriver"]["Data"]
    views = {}
    for who, lowers in (
        ("docker", [data["UpperDir"], *data["LowerDir"].split(":")]),
        (
            "skiff",
            [
                str(store.snapshots.upper_path(str(c)))
                for c in reversed(store.resolve(new_id).chain_ids)
            ],
        ),
    ):
        target = tmp_path / f"view-{who}"
        target.mkdir()
        subprocess.run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                "lowerdir=" + ":".join(lowers),
                str(target),
            ],
            check=True,
        )
        try:
            views[who] = describe(target)
        finally:
            subprocess.run(["umount", str(target)], check=False)
    assert "data/hard2" not in views["docker"] and sorted(
        k for k in views["docker"] if k.startswith("opq/")
    ) == ["opq/fresh"]
    assert {
        k: (views["skiff"].get(k), views["docker"].get(k))
        for k in set(views["skiff"]) | set(views["docker"])
        if views["skiff"].get(k) != views["docker"].get(k)
    } == {}
