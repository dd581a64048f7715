from __future__ import annotations

from lib.stats import Goal, Row
from lib.timing import Side, alternate, fill


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_warmup_then_rounds_alternate_and_reverse() -> None:
    calls: list[str] = []

    def side(name: str) -> Side:
        def measure() -> float:
            calls.append(name)
            return 1.0

        return Side(name, measure, lambda: calls.append(f"warm-{name}"))

    out = alternate([side("A"), side("B")], runs=4)
    assert calls == ["warm-A", "warm-B", "A", "B", "B", "A", "A", "B", "B", "A"]
    assert out.values("A") == [1.0] * 4
    assert out.rounds == 4


def test_default_warmup_is_one_discarded_measurement() -> None:
    values = iter([100.0, 1.0, 2.0])
    out = alternate([Side("A", lambda: next(values))], runs=2)
    assert out.values("A") == [1.0, 2.0]


def test_failing_warmup_drops_side_with_reason() -> None:
    def broken() -> float:
        raise RuntimeError("skiffd: exit 1: not built")

    out = alternate([Side("skiff", broken), Side("anchor", lambda: 2.0)], runs=3)
    assert out.errors == {"skiff": "skiffd: exit 1: not built"}
    assert out.values("skiff") == []
    assert out.values("anchor") == [2.0, 2.0, 2.0]


def test_failure_mid_run_names_the_run() -> None:
    n = iter(range(10))

    def flaky() -> float:
        if next(n) == 2:
            raise RuntimeError("boom")
        return 1.0

    out = alternate([Side("A", flaky), Side("B", lambda: 1.0)], runs=4)
    assert out.errors["A"] == "run 2: boom"
    assert len(out.values("B")) == 4


def test_dict_measurements_keep_each_metric() -> None:
    out = alternate([Side("A", lambda: {"idle": 1.0, "per": 0.5})], runs=2)
    assert out.values("A", "idle") == [1.0, 1.0]
    assert out.values("A", "per") == [0.5, 0.5]


def test_budget_stops_rounds_and_says_so() -> None:
    clock = Clock()

    def slow() -> float:
        clock.now += 10
        return 1.0

    def hung_warmup() -> None:
        clock.now += 100

    out = alternate(
        [Side("A", slow, lambda: None), Side("B", slow, hung_warmup)], runs=5, budget_s=45,
        clock=clock,
    )  # fmt: skip
    # the 100 s warm-up is not charged; 20 s rounds (A and B) fit twice in 45 s
    assert out.values("A") == [1.0, 1.0]
    assert out.notes == ["2 of 5 runs (time budget 45 s)"]


def test_fill_copies_samples_errors_and_notes() -> None:
    out = alternate([Side("dockerd", lambda: 2.0)], runs=2)
    out.notes.append("a note")
    row = Row("r", "t", "s", "skiffd", "dockerd", Goal("ratio", 0.33))
    fill(row, out, "skiffd", "dockerd", unavailable={"skiffd": "skiffd did not start: x"})
    assert row.anchor == [2.0, 2.0]
    assert row.skiff == []
    assert row.verdict() == "not yet: skiffd did not start: x"
    assert row.notes == ["a note"]


def test_nothing_starts_past_the_runs_deadline() -> None:
    clock = Clock()

    def slow() -> float:
        clock.now += 10
        return 1.0

    out = alternate(
        [Side("A", slow, lambda: None), Side("B", slow, lambda: None)], runs=5, clock=clock,
        deadline=35,
    )  # fmt: skip
    assert out.values("A") == [1.0, 1.0]
    assert out.notes == ["2 of 5 runs (the run's time limit was reached)"]
    clock.now = 100
    late = alternate([Side("A", slow)], runs=3, clock=clock, deadline=35)
    assert late.errors == {"A": "not measured: the run's time limit was reached"}
