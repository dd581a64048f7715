"""The API edge without a daemon: error mapping, routing, filters, detach keys, wording."""

from __future__ import annotations

import pytest

from skiff import errors
from skiff.api import streams
from skiff.api.containers import human_duration
from skiff.api.http import Router, status_for


def test_error_statuses() -> None:
    assert status_for(errors.NotFound("x")) == 404
    assert status_for(errors.Conflict("x")) == 409
    assert status_for(errors.AlreadyExists("x")) == 409
    assert status_for(errors.InvalidArgument("x")) == 400
    assert status_for(errors.NotImplementedYet("x")) == 501
    assert status_for(errors.Internal("x")) == 500
    assert status_for(ValueError("bug")) == 500


def test_router_params_and_names_with_slashes() -> None:
    r = Router()
    r.add("GET", "/containers/{id}/json", lambda req: None)  # type: ignore[arg-type,return-value]
    r.add("DELETE", "/images/{name}", lambda req: None)  # type: ignore[arg-type,return-value]
    found = r.match("GET", "/containers/abc/json")
    assert found is not None and found[1] == {"id": "abc"}
    img = r.match("DELETE", "/images/registry.local:5000/team/app:1")
    assert img is not None and img[1] == {"name": "registry.local:5000/team/app:1"}
    assert r.match("POST", "/containers/abc/json") is None


def test_detach_keys() -> None:
    assert streams.parse_detach_keys("") == b"\x10\x11"
    assert streams.parse_detach_keys("ctrl-a,x") == b"\x01x"
    with pytest.raises(errors.InvalidArgument):
        streams.parse_detach_keys("ctrl-1")
    m = streams.DetachMatcher(b"\x10\x11")
    assert m.feed(b"abc\x10") == (b"abc", False)
    assert m.feed(b"\x11rest") == (b"", True)
    m2 = streams.DetachMatcher(b"\x10\x11")
    assert m2.feed(b"\x10") == (b"", False)
    assert m2.feed(b"z") == (b"\x10z", False)


def test_mux_header() -> None:
    assert streams.mux_header(2, 258) == b"\x02\x00\x00\x00\x00\x00\x01\x02"


def test_human_duration_like_docker() -> None:
    assert human_duration(0.2) == "Less than a second"
    assert human_duration(1) == "1 second"
    assert human_duration(45) == "45 seconds"
    assert human_duration(61) == "About a minute"
    assert human_duration(600) == "10 minutes"
    assert human_duration(3600) == "About an hour"
    assert human_duration(3 * 86400) == "3 days"
