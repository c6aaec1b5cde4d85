"""The report's PNG plots: one figure per scenario that tells its story (not one bar per metric).

Invariant: a plot only draws rows that have the metric (unavailable baselines are skipped) and
a cell repeated over `--runs` is drawn at its median. Returns the file names it wrote.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import Measurement

__all__ = ["write_plots"]

Axes = Any  # matplotlib.axes.Axes, untyped here so that matplotlib stays optional
OURS, TABLE_LEVEL, POLLING = "ours (push)", "table-level", "polling 1 s"
PGLITE = "PGlite live (in process)"


def write_plots(rows: list[Measurement], out: Path) -> list[str]:
    """Write every plot whose scenario has rows; [] when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    plotters: dict[str, tuple[Callable[[Any, list[Measurement]], None], tuple[int, int]]] = {
        "observe-insert": (_observe_insert, (1, 1)),
        "fan-out": (_fan_out, (1, 2)),
        "scale": (_scale, (1, 2)),
        "throughput": (_throughput, (1, 2)),
        "query-latency": (_query_latency, (1, 1)),
    }
    written = []
    for scenario, (plot, shape) in plotters.items():
        mine = [row for row in rows if row.scenario == scenario and row.metrics]
        if not mine:
            continue
        figure, axes = plt.subplots(*shape, figsize=(5.5 * shape[1], 4), squeeze=False)
        plot(list(axes.flat), mine)
        figure.suptitle(scenario)
        figure.tight_layout()
        name = f"{scenario}.png"
        figure.savefig(out / name, dpi=100)
        plt.close(figure)
        written.append(name)
    return written


# -- helpers ----------------------------------------------------------------------------------


def _value(rows: list[Measurement], metric: str, **match: str) -> float:
    """Median of `metric` over the rows matching every field in `match`; NaN if none."""
    values = [
        row.metrics[metric]
        for row in rows
        if metric in row.metrics and all(getattr(row, k) == v for k, v in match.items())
    ]
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else float("nan")


def _leading_number(case: str) -> int:
    match = re.match(r"[\d,]+", case)
    return int(match.group().replace(",", "")) if match else 0


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _grouped_bars(
    axes: Axes, groups: list[str], series: dict[str, list[float]], *, log: bool = False
) -> None:
    """Bars of each series side by side within each group, values written on top."""
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        bars = axes.bar(xs, [0 if math.isnan(v) else v for v in values], width, label=label)
        axes.bar_label(bars, [_short(v) for v in values], fontsize=7)
    axes.set_xticks(range(len(groups)), groups, fontsize=8)
    if log:
        axes.set_yscale("log")
    axes.legend(fontsize=8)


def _short(value: float) -> str:
    if math.isnan(value):
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.2g}"


# -- one function per scenario ----------------------------------------------------------------


def _observe_insert(axes: list[Axes], rows: list[Measurement]) -> None:
    """commit->seen (push) vs staleness (polling), p50 and p99, per backend; log y."""
    labels, p50, p99 = [], [], []
    for row in rows:
        prefix = "staleness" if row.system == POLLING else "commit->seen"
        if f"{prefix} p50 ms" not in row.metrics:
            continue
        label = f"{row.system}\n{row.backend}"
        if label in labels:
            continue
        labels.append(label)
        p50.append(_value(rows, f"{prefix} p50 ms", system=row.system, backend=row.backend))
        p99.append(_value(rows, f"{prefix} p99 ms", system=row.system, backend=row.backend))
    _grouped_bars(axes[0], labels, {"p50": p50, "p99": p99}, log=True)
    axes[0].set_ylabel("commit -> seen by the subscriber, ms (log)")


def _fan_out(axes: list[Axes], rows: list[Measurement]) -> None:
    """Time until the last socket sees a write, and re-runs per commit, against the number of
    sockets, per system and backend (log-log); polling staleness as a flat dashed line."""
    metrics = ("last client sees it ms (median of writes)", "re-runs per commit")
    for system, backend in _systems(rows):
        if system == POLLING:
            continue
        cases = _unique([r.case for r in rows if r.system == system and r.backend == backend])
        xs = [_leading_number(case) for case in cases]
        for ax, metric in zip(axes, metrics, strict=True):
            ys = [_value(rows, metric, system=system, backend=backend, case=c) for c in cases]
            if not all(math.isnan(y) for y in ys):
                ax.plot(xs, ys, marker="o", label=f"{system}, {backend}")
    _polling_lines(axes[0], rows, metrics[0])
    titles = ("last socket sees the write, ms", "re-runs per commit")
    _log_log(axes, rows, titles, "sockets subscribed to the same query")


def _systems(rows: list[Measurement]) -> list[tuple[str, str]]:
    """(system, backend) pairs in order of appearance, without the ratio rows."""
    return list(dict.fromkeys((row.system, row.backend) for row in rows if "÷" not in row.system))


def _scale(axes: list[Axes], rows: list[Measurement]) -> None:
    """Re-runs per commit and commit->seen p50 against subscriptions, per system and backend;
    polling staleness p50 as a flat dashed line (it does not depend on subscriptions)."""
    for system in (OURS, TABLE_LEVEL, PGLITE):
        for backend in _unique([row.backend for row in rows if row.system == system]):
            cases = _unique([r.case for r in rows if r.system == system and r.backend == backend])
            xs = [_leading_number(case) for case in cases]
            for ax, metric in zip(axes, ("re-runs per commit", "commit->seen p50 ms"), strict=True):
                ys = [_value(rows, metric, system=system, backend=backend, case=c) for c in cases]
                ax.plot(xs, ys, marker="o", label=f"{system}, {backend}")
    _polling_lines(axes[1], rows, "staleness p50 ms")
    _log_log(axes, rows, ("re-runs per commit", "commit -> seen p50, ms"), "subscriptions")


def _polling_lines(ax: Axes, rows: list[Measurement], metric: str) -> None:
    """Polling's figure as a flat dashed line per backend: it does not depend on the x axis."""
    for backend in _unique([row.backend for row in rows if row.system == POLLING]):
        stale = _value(rows, metric, system=POLLING, backend=backend)
        ax.axhline(stale, linestyle="--", linewidth=1, label=f"polling 1 s, {backend}")


def _log_log(
    axes: list[Axes], rows: list[Measurement], titles: tuple[str, ...], xlabel: str
) -> None:
    """Log-log axes ticked at the sizes measured (the leading number of each case)."""
    ticks = sorted({_leading_number(row.case) for row in rows if row.system != POLLING})
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(ticks, [f"{t:,}" for t in ticks], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlabel(xlabel)
        ax.set_title(f"{title} (log)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # rows without re-runs leave one axis empty
            ax.legend(fontsize=7)


def _throughput(axes: list[Axes], rows: list[Measurement]) -> None:
    """committed/s and retries/s per case, a bar per system and backend (ours, table-level,
    PGlite); PGlite's notes in parentheses are dropped so its bars join the same cases."""
    rows = [
        Measurement(r.scenario, r.backend, r.system, r.case.split(" (", 1)[0], r.metrics)
        for r in rows
        if "÷" not in r.system
    ]
    cases = _unique([row.case for row in rows])
    for ax, metric in zip(axes, ("committed/s", "retries/s"), strict=True):
        series = {
            f"{system}, {backend}": [
                _value(rows, metric, system=system, backend=backend, case=c) for c in cases
            ]
            for system, backend in _systems(rows)
        }
        _grouped_bars(ax, [c.replace(", ", "\n") for c in cases], series)
        ax.set_title(metric, fontsize=10)


def _query_latency(axes: list[Axes], rows: list[Measurement]) -> None:
    """p50 latency of each query shape, a bar per system and backend (ours over HTTP, ours in
    process, PGlite in process); log y."""
    rows = [row for row in rows if "÷" not in row.system]
    cases = _unique([row.case for row in rows])
    series = {
        f"{system}, {backend}": [
            _value(rows, "latency p50 ms", system=system, backend=backend, case=c) for c in cases
        ]
        for system, backend in _systems(rows)
    }
    _grouped_bars(axes[0], [c.replace(" (", "\n(") for c in cases], series, log=True)
    axes[0].set_ylabel("latency p50, ms (log)")
