# ruff: noqa: RUF001 (the report is typeset with multiplication signs and dashes)
"""Rows of the bench table: samples of both sides, their summary, the goal and whether it is met.

Vocabulary: a *row* compares one measured quantity between *skiff* and an *anchor* (runc,
dockerd, podman, GNU tar, distribution, the docker CLI). A row's *status* is `measured` (both
sides have samples), `not yet` (the skiff side cannot run: the feature is not built or it failed,
with the reason) or `failed` (the anchor side could not be measured, with the reason).
Lower is better for every quantity here (seconds, MiB).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Literal

MEASURED = "measured"
NOT_YET = "not yet"
FAILED = "failed"

GoalKind = Literal["ratio", "absolute"]


@dataclass(frozen=True)
class Goal:
    """`ratio`: skiff median / anchor median <= limit. `absolute`: skiff median <= limit (unit of the row)."""

    kind: GoalKind
    limit: float

    def describe(self, unit: str) -> str:
        if self.kind == "ratio":
            return f"≤ {self.limit:g} ×"
        return f"≤ {self.limit:g} {unit}"


@dataclass(frozen=True)
class Summary:
    median: float
    low: float
    high: float
    n: int


def summarize(samples: list[float]) -> Summary | None:
    """Median, min and max of the samples; None when there are none (never a made-up number)."""
    if not samples:
        return None
    return Summary(statistics.median(samples), min(samples), max(samples), len(samples))


@dataclass
class Row:
    """One line of the table. Samples are raw measurements in `unit`, in the order taken."""

    id: str
    title: str
    unit: str  # "s" or "MiB"
    skiff_label: str
    anchor_label: str
    goal: Goal | None = None
    skiff: list[float] = field(default_factory=list)
    anchor: list[float] = field(default_factory=list)
    skiff_error: str = ""
    anchor_error: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.skiff_error or not self.skiff:
            return NOT_YET
        if self.anchor_error or (not self.anchor and not self.absolute_only):
            return FAILED
        return MEASURED

    @property
    def absolute_only(self) -> bool:
        """A row with an absolute goal is judged on skiff alone; the anchor is context."""
        return self.goal is not None and self.goal.kind == "absolute"

    @property
    def reason(self) -> str:
        if self.status == NOT_YET:
            return self.skiff_error or "no skiff samples"
        if self.status == FAILED:
            return self.anchor_error or f"no {self.anchor_label} samples"
        return ""

    def skiff_summary(self) -> Summary | None:
        return summarize(self.skiff) if not self.skiff_error else None

    def anchor_summary(self) -> Summary | None:
        return summarize(self.anchor) if not self.anchor_error else None

    def ratio(self) -> float | None:
        """skiff median / anchor median, when both exist and the anchor is not zero."""
        s, a = self.skiff_summary(), self.anchor_summary()
        if s is None or a is None or a.median <= 0:
            return None
        return s.median / a.median

    def met(self) -> bool | None:
        """Whether the goal is met; None when there is no goal or not enough data to judge."""
        if self.goal is None:
            return None
        s = self.skiff_summary()
        if s is None:
            return None
        if self.goal.kind == "absolute":
            return s.median <= self.goal.limit
        r = self.ratio()
        if r is None:
            return None
        return r <= self.goal.limit

    def verdict(self) -> str:
        """The last column of the table: met / not met / not yet: reason / failed: reason."""
        status = self.status
        if status == NOT_YET:
            return f"not yet: {self.reason}"
        if status == FAILED and not self.absolute_only:
            return f"failed ({self.anchor_label}): {self.reason}"
        met = self.met()
        if met is None:
            return "measured (no goal)" if self.goal is None else "not judged"
        return "met" if met else "not met"

    def to_json(self) -> dict[str, object]:
        s, a = self.skiff_summary(), self.anchor_summary()
        return {
            "id": self.id,
            "title": self.title,
            "unit": self.unit,
            "skiff_label": self.skiff_label,
            "anchor_label": self.anchor_label,
            "goal": None
            if self.goal is None
            else {"kind": self.goal.kind, "limit": self.goal.limit},
            "skiff_samples": list(self.skiff),
            "anchor_samples": list(self.anchor),
            "skiff_median": s.median if s else None,
            "anchor_median": a.median if a else None,
            "ratio": self.ratio(),
            "status": self.status,
            "reason": self.reason,
            "met": self.met(),
            "verdict": self.verdict(),
            "notes": list(self.notes),
        }
