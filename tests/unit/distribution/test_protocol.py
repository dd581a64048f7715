"""Wire grammar: ranges, challenges, names, pagination."""

from __future__ import annotations

import pytest

from skiff.distribution import protocol as p


def test_byte_ranges():
    assert p.parse_byte_range("bytes=0-9", 100) == (0, 9)
    assert p.parse_byte_range("bytes=90-", 100) == (90, 99)
    assert p.parse_byte_range("bytes=-10", 100) == (90, 99)
    assert p.parse_byte_range("bytes=50-500", 100) == (50, 99)
    assert p.parse_byte_range("bytes=100-", 100) is None
    assert p.parse_byte_range("bytes=5-2", 100) is None
    assert p.parse_byte_range("lines=1-2", 100) is None


def test_content_range():
    assert p.parse_content_range("0-999") == (0, 999)
    assert p.parse_content_range("bytes 10-19/*") == (10, 19)
    with pytest.raises(ValueError):
        p.parse_content_range("9-1")
    with pytest.raises(ValueError):
        p.parse_content_range("abc")


def test_challenges():
    [ch] = p.parse_challenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'
    )
    assert ch.scheme == "bearer"
    assert ch.params["scope"] == "repository:library/busybox:pull"
    chs = p.parse_challenges('Basic realm="x", Bearer realm="y",service="z"')
    assert [c.scheme for c in chs] == ["basic", "bearer"] and chs[1].params == {
        "realm": "y",
        "service": "z",
    }


def test_names_and_tags():
    assert p.valid_name("library/busybox") and p.valid_name("a.b-c__d/e")
    assert not p.valid_name("Upper") and not p.valid_name("a//b") and not p.valid_name("-a")
    assert p.valid_tag("v1.0_rc-1") and not p.valid_tag(".x") and not p.valid_tag("a" * 129)


def test_paginate():
    assert p.paginate(["c", "a", "b"], 2, None) == (["a", "b"], True)
    assert p.paginate(["c", "a", "b"], 2, "b") == (["c"], False)
    assert p.paginate(["a"], None, None) == (["a"], False)


def test_error_body_round_trip():
    e = p.RegistryError("BLOB_UNKNOWN", "blob unknown to registry", {"digest": "sha256:x"})
    assert e.status == 404
    assert p.parse_error_body(e.body()) == [
        {
            "code": "BLOB_UNKNOWN",
            "message": "blob unknown to registry",
            "detail": {"digest": "sha256:x"},
        }
    ]
    assert p.parse_error_body(b"<html>") == []
