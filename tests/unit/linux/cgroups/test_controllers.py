"""Controller plans: what each module asks to write, for both versions."""

from __future__ import annotations

import pytest

from skiff.errors import InvalidArgument
from skiff.linux.cgroups import hugetlb, net, rdma, unified
from skiff.linux.cgroups.fs import Write, write


def test_network_plan_v1() -> None:
    steps = net.plan(
        {"network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]}}, 1
    )
    assert steps == [
        write("net_cls", "net_cls.classid", 1048577, "linux.resources.network.classID"),
        write(
            "net_prio",
            "net_prio.ifpriomap",
            "eth0 5",
            "linux.resources.network.priorities[0].priority",
        ),
    ]


def test_rdma_plan_fills_missing_limits_with_max() -> None:
    steps = rdma.plan({"rdma": {"mlx5_1": {"hcaHandles": 3}}}, 2)
    assert steps == [
        write(
            "rdma", "rdma.max", "mlx5_1 hca_handle=3 hca_object=max", "linux.resources.rdma.mlx5_1"
        )
    ]


def test_hugetlb_file_names_per_version() -> None:
    res = {"hugepageLimits": [{"pageSize": "1GB", "limit": 1 << 30}]}
    (v1,) = hugetlb.plan(res, 1)
    (v2,) = hugetlb.plan(res, 2)
    assert isinstance(v1, Write) and isinstance(v2, Write)
    assert v1.choices == (("hugetlb.1GB.limit_in_bytes", str(1 << 30)),)
    assert v2.choices == (("hugetlb.1GB.max", str(1 << 30)),)


def test_unified_keys_are_charged_to_their_controller() -> None:
    (w,) = unified.plan({"unified": {"io.max": "8:0 rbps=1"}}, 2)
    assert isinstance(w, Write) and w.controller == "io"
    (w1,) = unified.plan({"unified": {"io.max": "8:0 rbps=1"}}, 1)
    assert isinstance(w1, Write) and w1.controller == "unified"


@pytest.mark.parametrize(
    ("res", "field"),
    [
        ({"network": {"classID": -1}}, "linux.resources.network.classID"),
        ({"network": {"priorities": [{"priority": 1}]}}, r"priorities\[0\].name"),
        ({"rdma": {"mlx5_1": {"hcaObjects": "many"}}}, "linux.resources.rdma.mlx5_1.hcaObjects"),
    ],
)
def test_bad_values(res: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        for module in (net, rdma):
            module.plan(res, 1)
