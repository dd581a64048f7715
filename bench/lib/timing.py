"""Alternating measurement: every side warms up, then rounds alternate the sides (A B, B A, A B …)
so that drift on the machine (page cache, CPU frequency, other load) and any advantage of going
first fall on all sides alike.

A side is a callable that takes one measurement and returns either seconds (a float) or several
named values (a dict, e.g. idle and per-container memory). A side that raises is dropped from
the remaining rounds and its reason kept: the row then says "not yet"/"failed" with that reason
instead of a number.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .stats import Row

Measurement = float | dict[str, float]


@dataclass
class Side:
    name: str
    measure: Callable[[], Measurement]
    warmup: Callable[[], object] | None = None  # default: one measurement, discarded
    warmups: int = 1


@dataclass
class Outcome:
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rounds: int = 0

    def values(self, side: str, metric: str = "value") -> list[float]:
        return list(self.samples.get(side, {}).get(metric, []))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 240 else text[:239] + "…"


def alternate(
    sides: list[Side],
    runs: int,
    budget_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    log: Callable[[str], None] = lambda _msg: None,
    deadline: float | None = None,
) -> Outcome:
    """Warm every side up, then take `runs` rounds of one measurement per side, the order
    reversed every other round.

    Rounds stop early when the next one would end past `budget_s` after the warm-ups
    (estimated from the rounds so far); the outcome then says how many rounds ran. Past
    `deadline` (a `clock()` time: the whole run's limit) nothing more starts. A side that fails is dropped, with reason.
    """
    out = Outcome()
    active: list[Side] = []
    for side in sides:
        if deadline is not None and clock() >= deadline:
            out.errors[side.name] = "not measured: the run's time limit was reached"
            continue
        try:
            for _ in range(side.warmups):
                (side.warmup or side.measure)()
        except Exception as exc:
            out.errors[side.name] = _describe(exc)
            log(f"    {side.name}: {out.errors[side.name]}")
            continue
        active.append(side)
        out.samples[side.name] = {}
    rounds_start = clock()
    for i in range(runs):
        if not active:
            break
        if deadline is not None and clock() >= deadline:
            out.notes.append(f"{i} of {runs} runs (the run's time limit was reached)")
            break
        if budget_s is not None and i > 0:
            # Warm-ups are not charged: a side that hung there (and was dropped) must not
            # cost the others their runs. Command timeouts bound the warm-ups instead.
            per_round = (clock() - rounds_start) / i
            if clock() - rounds_start + per_round > budget_s:
                out.notes.append(f"{i} of {runs} runs (time budget {budget_s:g} s)")
                break
        # A B, then B A: alternation that also cancels any advantage of going first.
        for side in list(active) if i % 2 == 0 else list(reversed(active)):
            try:
                value = side.measure()
            except Exception as exc:
                out.errors[side.name] = f"run {i + 1}: {_describe(exc)}"
                log(f"    {side.name}: {out.errors[side.name]}")
                active.remove(side)
                continue
            metrics = value if isinstance(value, dict) else {"value": float(value)}
            for key, v in metrics.items():
                out.samples[side.name].setdefault(key, []).append(float(v))
        out.rounds = i + 1
    return out


def fill(
    row: Row,
    outcome: Outcome,
    skiff_side: str,
    anchor_side: str,
    metric: str = "value",
    unavailable: dict[str, str] | None = None,
) -> None:
    """Copy one metric of two sides into a row, with their failure reasons and the notes."""
    errors = {**(unavailable or {}), **outcome.errors}
    row.skiff = outcome.values(skiff_side, metric)
    row.anchor = outcome.values(anchor_side, metric)
    row.skiff_error = errors.get(skiff_side, "")
    row.anchor_error = errors.get(anchor_side, "")
    for note in outcome.notes:
        if note not in row.notes:
            row.notes.append(note)
