# ruff: noqa: RUF001, RUF002 (the report is typeset with multiplication signs and dashes)
"""The bench report: a Markdown table with the machine header, the raw samples as JSON, and a
bar chart of the ratios with their goal lines (matplotlib, Agg backend)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from .stats import MEASURED, Row, Summary


def fmt_value(value: float, unit: str) -> str:
    if unit == "s":
        if value < 1:
            return f"{value * 1000:.1f} ms"
        return f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:.3g} {unit}"


def fmt_summary(summary: Summary | None, unit: str) -> tuple[str, str]:
    """(median, 'min–max') cells; '—' for a side without samples."""
    if summary is None:
        return "—", "—"
    return fmt_value(summary.median, unit), (
        f"{fmt_value(summary.low, unit)}–{fmt_value(summary.high, unit)}"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(
    rows: Sequence[Row], machine: Mapping[str, object], run_info: Mapping[str, object]
) -> str:
    versions = machine.get("versions", {})
    assert isinstance(versions, Mapping)
    lines = [
        "# skiff bench: skiff against Docker, Podman, runc and distribution",
        "",
        f"Run {machine.get('date')} · {run_info.get('mode')} · took {run_info.get('duration')} · "
        f"`{run_info.get('command')}`",
        "",
        f"Machine: {machine.get('cores')} cores ({machine.get('cpu')}), {machine.get('memory')} "
        f"memory, kernel {machine.get('kernel')}, cgroups {machine.get('cgroup_mode')}, "
        f"{machine.get('os')}, Python {machine.get('python')}.",
        "",
        "Versions: " + "; ".join(f"{k}: {v}" for k, v in versions.items()) + ".",
        "",
        "Lower is better everywhere. Ratio = skiff median / anchor median. After a warm-up of "
        "each, the sides ran alternately (A B, B A, A B …); n = samples per side (skiff/anchor).",
        "",
        "| Workload | skiff vs anchor | skiff median | skiff min–max | anchor median "
        "| anchor min–max | n | skiff/anchor | Goal | Result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        s, a = row.skiff_summary(), row.anchor_summary()
        sm, sr = fmt_summary(s, row.unit)
        am, ar = fmt_summary(a, row.unit)
        ratio = row.ratio()
        n = "/".join(str(x.n) if x else "0" for x in (s, a))
        goal = row.goal.describe(row.unit) if row.goal else "—"
        lines.append(
            "| "
            + " | ".join(
                _cell(c)
                for c in (
                    row.title,
                    f"{row.skiff_label} vs {row.anchor_label}",
                    sm,
                    sr,
                    am,
                    ar,
                    n,
                    f"{ratio:.2f} ×" if ratio is not None else "—",
                    goal,
                    row.verdict(),
                )
            )
            + " |"
        )
    notes = [(row.title, note) for row in rows for note in row.notes]
    anchor_fail = [(row.title, row.anchor_error) for row in rows if row.anchor_error]
    if notes or anchor_fail:
        lines += ["", "Notes:", ""]
        lines += [f"- {title}: {note}" for title, note in notes]
        lines += [f"- {title}: anchor not measured: {err}" for title, err in anchor_fail]
    measured = sum(1 for r in rows if r.status == MEASURED)
    met = sum(1 for r in rows if r.met())
    goals = sum(1 for r in rows if r.goal is not None)
    lines += [
        "",
        f"{measured} of {len(rows)} rows measured on both sides; {met} of {goals} goals met.",
        "",
    ]
    return "\n".join(lines)


def to_json(
    rows: Sequence[Row], machine: Mapping[str, object], run_info: Mapping[str, object]
) -> str:
    return json.dumps(
        {"machine": machine, "run": run_info, "rows": [r.to_json() for r in rows]},
        indent=2,
        sort_keys=False,
    )


def chart_points(rows: Sequence[Row]) -> list[tuple[str, float | None, float | None, str]]:
    """(label, bar height, goal line, note) per row with a goal. Ratio goals plot skiff/anchor
    against the goal ratio; absolute goals plot skiff/limit against 1.0. No bar when unmeasured."""
    points: list[tuple[str, float | None, float | None, str]] = []
    for row in rows:
        if row.goal is None:
            continue
        s = row.skiff_summary()
        if row.goal.kind == "ratio":
            points.append((row.title, row.ratio(), row.goal.limit, row.status))
        else:
            height = s.median / row.goal.limit if s is not None and row.goal.limit else None
            points.append(
                (f"{row.title}\n(÷ {row.goal.limit:g} {row.unit})", height, 1.0, row.status)
            )
    return points


def chart(rows: Sequence[Row], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = chart_points(rows)
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(points) + 2), 6))
    xs = range(len(points))
    heights = [p[1] if p[1] is not None else 0.0 for p in points]
    colors = []
    for _label, height, goal, _status in points:
        if height is None or goal is None:
            colors.append("#cccccc")
        else:
            colors.append("#2e8b57" if height <= goal else "#c0392b")
    ax.bar(list(xs), heights, color=colors, width=0.6)
    for x, (_label, height, goal, status) in zip(xs, points, strict=True):
        if goal is not None:
            ax.hlines(goal, x - 0.4, x + 0.4, colors="black", linestyles="dashed", linewidth=1.5)
        if height is None:
            ax.text(
                x, 0.02, status, ha="center", va="bottom", rotation=90, fontsize=8,
                transform=ax.get_xaxis_transform(),
            )  # fmt: skip
        else:
            ax.text(x, height, f"{height:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([p[0].replace("`", "") for p in points], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("skiff / anchor (lower is better); dashed = goal")
    ax.set_title(title, fontsize=10)
    top = max([h for h in heights] + [g for _l, _h, g, _s in points if g is not None] + [1.0])
    if top > 6:
        ax.set_yscale("log")
        low = min([h for h in heights if h > 0] + [0.1])
        ax.set_ylim(low / 2, top * 2)
    else:
        ax.set_ylim(0, top * 1.15)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(
    rows: Sequence[Row],
    machine: Mapping[str, object],
    run_info: Mapping[str, object],
    out_dir: Path,
) -> list[Path]:
    """Write latest.md, latest.json and latest.png (each temp → rename) into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (
        ("latest.md", markdown(rows, machine, run_info)),
        ("latest.json", to_json(rows, machine, run_info)),
    ):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out_dir / name)
        written.append(out_dir / name)
    tmp_png = out_dir / ".latest.png.tmp.png"
    chart(
        rows,
        tmp_png,
        f"skiff bench {machine.get('date')} — {machine.get('cores')} cores, "
        f"kernel {machine.get('kernel')}",
    )
    tmp_png.replace(out_dir / "latest.png")
    written.append(out_dir / "latest.png")
    return written
