from pathlib import Path

import pytest

from skiff.engine import volumemounts as vm
from skiff.errors import InvalidArgument
from skiff.volumes.local import LocalVolumes


def test_split_bind_forms() -> None:
    assert vm.split_bind("data:/srv") == ("data", "/srv", [])
    assert vm.split_bind("/host:/srv:ro,z") == ("/host", "/srv", ["ro", "z"])
    assert vm.split_bind("/srv") == ("", "/srv", [])
    with pytest.raises(InvalidArgument):
        vm.split_bind("a:b:c:d")


def test_plan_named_anonymous_image_and_volumes_from(tmp_path: Path) -> None:
    vols = LocalVolumes(tmp_path / "v")
    hc = {
        "Binds": ["data:/data:ro", "/host:/h"],
        "Mounts": [
            {"Type": "volume", "Source": "", "Target": "/anon", "VolumeOptions": {"NoCopy": True}}
        ],
    }
    points = vm.plan(
        vols, "c1", {"Volumes": {"/cfg": {}}}, hc, {"/var/lib/x": {}, "/h": {}}, lambda ref: []
    )
    by_dst = {p["Destination"]: p for p in points}
    assert set(by_dst) == {"/data", "/anon", "/cfg", "/var/lib/x"}  # /h is a host bind
    assert by_dst["/data"]["Name"] == "data" and by_dst["/data"]["RW"] is False
    assert by_dst["/anon"]["_copy"] is False
    assert vols.get("data").users == ["c1"]
    assert vm.strip_volumes(hc)["Binds"] == ["/host:/h"] and vm.strip_volumes(hc)["Mounts"] == []
    mounts = vm.oci_mounts(points)
    assert {
        "destination": "/data",
        "type": "bind",
        "source": str(vols.mountpoint("data")),
        "options": ["rbind", "rprivate", "ro"],
    } in mounts
    # --volumes-from shares the same volumes, read-only when asked
    shared = vm.plan(
        vols, "c2", {}, {"VolumesFrom": ["c1:ro"]}, None, lambda ref: vm.inspect_points(points)
    )
    assert {p["Name"] for p in shared} == {p["Name"] for p in points}
    assert all(p["RW"] is False for p in shared)
    # removal with -v drops anonymous volumes only once nobody uses them
    vm.release(vols, "c1", points, remove_anonymous=True)
    assert vols.get(by_dst["/anon"]["Name"]).users == ["c2"]
    vm.release(vols, "c2", shared, remove_anonymous=True)
    assert [v.name for v in vols.volumes()] == ["data"]


def test_bad_subpath_and_relative_targets(tmp_path: Path) -> None:
    vols = LocalVolumes(tmp_path / "v")
    with pytest.raises(InvalidArgument, match="subpath"):
        vm.plan(
            vols,
            "c",
            {},
            {
                "Mounts": [
                    {
                        "Type": "volume",
                        "Source": "x1",
                        "Target": "/t",
                        "VolumeOptions": {"Subpath": "../etc"},
                    }
                ]
            },
            None,
            lambda r: [],
        )
    with pytest.raises(InvalidArgument, match="absolute"):
        vm.plan(vols, "c", {}, {"Binds": ["vol1:relative"]}, None, lambda r: [])
    assert vols.volumes() == []
