# ruff: noqa: RUF001 (the report is typeset with multiplication signs and dashes)
from __future__ import annotations

import pytest
from lib.stats import FAILED, MEASURED, NOT_YET, Goal, Row, summarize


def row(**kw: object) -> Row:
    base: dict[str, object] = dict(
        id="r", title="t", unit="s", skiff_label="skiff", anchor_label="runc",
        goal=Goal("ratio", 1.0),
    )  # fmt: skip
    base.update(kw)
    return Row(**base)  # type: ignore[arg-type]


def test_summarize_median_min_max() -> None:
    s = summarize([3.0, 1.0, 2.0, 10.0])
    assert s is not None
    assert (s.median, s.low, s.high, s.n) == (2.5, 1.0, 10.0, 4)


def test_summarize_nothing_is_none_not_zero() -> None:
    assert summarize([]) is None


def test_ratio_and_goal_met() -> None:
    r = row(skiff=[1.0, 2.0, 3.0], anchor=[4.0, 4.0, 4.0])
    assert r.status == MEASURED
    assert r.ratio() == pytest.approx(0.5)
    assert r.met() is True
    assert r.verdict() == "met"


def test_goal_not_met_at_the_boundary_plus_epsilon() -> None:
    r = row(goal=Goal("ratio", 0.33), skiff=[0.34], anchor=[1.0])
    assert r.met() is False
    assert r.verdict() == "not met"
    assert row(goal=Goal("ratio", 0.5), skiff=[0.5], anchor=[1.0]).met() is True


def test_skiff_side_missing_is_not_yet_with_the_reason() -> None:
    r = row(anchor=[1.0, 1.1], skiff_error="skiffd did not start: exit 1: not built")
    assert r.status == NOT_YET
    assert r.ratio() is None
    assert r.met() is None
    assert r.verdict() == "not yet: skiffd did not start: exit 1: not built"


def test_skiff_error_hides_partial_samples() -> None:
    # A side that failed after some runs gives no median: the row says why instead.
    r = row(skiff=[1.0], skiff_error="run 2: exit 1", anchor=[1.0])
    assert r.skiff_summary() is None
    assert r.status == NOT_YET


def test_no_samples_and_no_error_is_still_not_yet() -> None:
    assert row(anchor=[1.0]).verdict() == "not yet: no skiff samples"


def test_anchor_failure_is_failed_not_met() -> None:
    r = row(skiff=[1.0], anchor_error="dockerd did not start")
    assert r.status == FAILED
    assert r.verdict().startswith("failed (runc): dockerd did not start")
    assert r.met() is None


def test_absolute_goal_judged_on_skiff_alone() -> None:
    r = row(unit="MiB", goal=Goal("absolute", 60.0), skiff=[50.0, 70.0, 55.0], anchor_error="x")
    assert r.met() is True
    assert r.verdict() == "met"
    assert row(unit="MiB", goal=Goal("absolute", 2.0), skiff=[2.5], anchor=[13.0]).met() is False


def test_no_goal_is_measured_without_verdict() -> None:
    r = row(goal=None, skiff=[1.0], anchor=[2.0])
    assert r.met() is None
    assert r.verdict() == "measured (no goal)"


def test_zero_anchor_gives_no_ratio() -> None:
    assert row(skiff=[1.0], anchor=[0.0]).ratio() is None


def test_goal_description() -> None:
    assert Goal("ratio", 0.33).describe("s") == "≤ 0.33 ×"
    assert Goal("absolute", 60.0).describe("MiB") == "≤ 60 MiB"


def test_to_json_keeps_raw_samples() -> None:
    data = row(skiff=[1.0, 3.0, 2.0], anchor=[2.0, 2.0, 2.0]).to_json()
    assert data["skiff_samples"] == [1.0, 3.0, 2.0]
    assert data["skiff_median"] == 2.0
    assert data["ratio"] == 1.0
    assert data["met"] is True
    assert data["goal"] == {"kind": "ratio", "limit": 1.0}
