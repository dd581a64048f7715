"""skiff.linux.capabilities: names, numbers and reading the sets (no root needed)."""

from __future__ import annotations

import pytest

from skiff.errors import InvalidArgument
from skiff.linux import capabilities as caps


def test_numbers_match_the_kernel_header() -> None:
    assert caps.CAP_NUMBERS["CAP_CHOWN"] == 0
    assert caps.CAP_NUMBERS["CAP_SYS_ADMIN"] == 21
    assert caps.CAP_NUMBERS["CAP_MKNOD"] == 27
    assert caps.CAP_NUMBERS["CAP_CHECKPOINT_RESTORE"] == 40
    assert sorted(caps.CAP_NUMBERS.values()) == list(range(41))


def test_all_caps_is_what_the_kernel_knows() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    assert len(caps.ALL_CAPS) == min(last, 40) + 1
    assert caps.ALL_CAPS[0] == "CAP_CHOWN"


@pytest.mark.parametrize(
    ("name", "number"), [("CAP_KILL", 5), ("KILL", 5), ("net_admin", 12), ("cap_bpf", 39)]
)
def test_parse_cap(name: str, number: int) -> None:
    assert caps.parse_cap(name) == number


@pytest.mark.parametrize("name", ["CAP_NOPE", "", "CAP_"])
def test_parse_cap_rejects_unknown(name: str) -> None:
    with pytest.raises(InvalidArgument, match="unknown capability"):
        caps.parse_cap(name)


def test_apply_rejects_bad_names_before_touching_anything() -> None:
    before = caps.current()
    with pytest.raises(InvalidArgument, match=r"process.capabilities.bounding: capability 'CAP_X'"):
        caps.apply({"bounding": ["CAP_X"]})
    with pytest.raises(InvalidArgument, match="unknown set 'everything'"):
        caps.apply({"everything": []})
    assert caps.current() == before


def test_apply_none_is_a_no_op() -> None:
    before = caps.current()
    caps.apply(None)
    assert caps.current() == before


def test_current_and_names() -> None:
    sets = caps.current()
    assert set(sets) == {"inheritable", "permitted", "effective", "bounding", "ambient"}
    assert caps.names(0b100001) == ["CAP_CHOWN", "CAP_KILL"]
