# ruff: noqa: RUF001 (the report is typeset with multiplication signs and dashes)
from __future__ import annotations

import json
from pathlib import Path

from lib.report import chart_points, fmt_value, markdown, to_json, write_all
from lib.stats import Goal, Row

MACHINE = {
    "date": "2026-01-01 00:00 UTC",
    "cores": 2,
    "cpu": "test cpu",
    "memory": "4.0 GiB",
    "kernel": "6.1.0",
    "os": "Debian",
    "cgroup_mode": "hybrid",
    "python": "3.11",
    "versions": {"runc": "runc version 1.1.5", "skiff": "0.1.0"},
}
RUN = {"mode": "quick", "duration": "1.0 min", "command": "bench/run --quick"}


def rows() -> list[Row]:
    return [
        Row("a", "runtime run", "s", "skiff-runtime", "runc", Goal("ratio", 1.0),
            skiff=[0.020, 0.030, 0.025], anchor=[0.031, 0.030, 0.032]),
        Row("b", "run --rm", "s", "skiffd", "dockerd", Goal("ratio", 0.33),
            anchor=[0.3, 0.4], skiff_error="skiffd did not start: exit 1: not | built"),
        Row("c", "idle RSS", "MiB", "skiffd", "dockerd", Goal("absolute", 60.0),
            skiff=[45.0], anchor=[128.0], notes=["dockerd processes counted: dockerd×1"]),
    ]  # fmt: skip


def test_fmt_value_units() -> None:
    assert fmt_value(0.0312, "s") == "31.2 ms"
    assert fmt_value(2.5, "s") == "2.50 s"
    assert fmt_value(12.34, "MiB") == "12.3 MiB"


def test_markdown_has_header_every_row_and_reasons() -> None:
    text = markdown(rows(), MACHINE, RUN)
    assert "2 cores" in text and "kernel 6.1.0" in text and "cgroups hybrid" in text
    assert "runc: runc version 1.1.5" in text
    table = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert len(table) == 1 + 3  # header + one line per row, none skipped
    assert (
        "| 25.0 ms | 20.0 ms–30.0 ms | 31.0 ms | 30.0 ms–32.0 ms | 3/3 | 0.81 × | ≤ 1 × | met |"
        in text
    )
    # the not-yet row keeps its anchor numbers and its reason, with '|' escaped
    assert "not yet: skiffd did not start: exit 1: not \\| built" in text
    assert "| — | — | 350.0 ms |" in text
    assert "≤ 60 MiB | met |" in text
    assert "dockerd processes counted" in text
    assert "2 of 3 rows measured on both sides; 2 of 3 goals met." in text


def test_json_has_raw_samples_and_machine() -> None:
    data = json.loads(to_json(rows(), MACHINE, RUN))
    assert data["machine"]["cores"] == 2
    assert data["rows"][0]["skiff_samples"] == [0.020, 0.030, 0.025]
    assert data["rows"][1]["status"] == "not yet"
    assert data["rows"][1]["skiff_median"] is None


def test_chart_points_ratio_and_absolute() -> None:
    pts = chart_points(rows())
    assert pts[0][1] is not None and abs(pts[0][1] - 25 / 31) < 1e-9 and pts[0][2] == 1.0
    assert pts[1][1] is None and pts[1][3] == "not yet"
    assert pts[2][1] == 45.0 / 60.0 and pts[2][2] == 1.0


def test_write_all_writes_three_files(tmp_path: Path) -> None:
    written = write_all(rows(), MACHINE, RUN, tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == ["latest.json", "latest.md", "latest.png"]
    assert (tmp_path / "out" / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "out").glob(".*tmp*"))
