"""`python -m bench`: run the scenarios against real servers and write the results report.

Output: bench/results/<timestamp>/results.md (one Markdown table per scenario; a cell is the
median over `--runs`, with (min..max) when there were several runs) and, when matplotlib is
installed, one PNG per scenario beside it (bench/plots.py). `--publish` copies the report into
bench/RESULTS.md between the markers PUBLISH_BEGIN and PUBLISH_END, leaving the rest alone.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import statistics
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import (
    SEED,
    SIZES,
    BenchEnv,
    CpuPlan,
    Measurement,
    code_version,
    machine_facts,
    say,
)
from bench.plots import write_plots
from bench.scenarios import SCENARIOS

__all__ = ["main", "parse_args", "render_report"]

BENCH = Path(__file__).resolve().parent
PUBLISH_BEGIN = "<!-- bench:begin (written by python -m bench --publish) -->"
PUBLISH_END = "<!-- bench:end -->"
RowKey = tuple[str, str, str, str]
NO_PLOTS = "(No plots: matplotlib is not installed; `pip install -e .[bench]`.)"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, SQLite unless --backend (~2 minutes)"
    )
    parser.add_argument("--tiny", action="store_true", help="smoke-test sizes (CI)")
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgres", "both"],
        default=None,
        help="default: both for the full run, sqlite for --quick and --tiny",
    )
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS), dest="scenarios")
    parser.add_argument("--runs", type=int, default=1, help="repeat each scenario (min/median/max)")
    parser.add_argument("--no-baselines", action="store_true", help="only our server")
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="server on one core, bench clients on the others (Linux, 2+ cores; default on)",
    )
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument("--publish", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    if args.backend is None:
        args.backend = "sqlite" if args.quick or args.tiny else "both"
    return args


async def run_all(args: argparse.Namespace, cpus: CpuPlan | None) -> list[Measurement]:
    sizes = SIZES["tiny" if args.tiny else "quick" if args.quick else "full"]
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if cpus is not None:
        cpus.pin_this_process()
    rows: list[Measurement] = []
    for backend in backends:
        embedded = backend == backends[0] and not args.no_baselines
        env = BenchEnv(
            backend, sizes, baselines=not args.no_baselines, embedded=embedded, cpus=cpus
        )
        for name in args.scenarios or list(SCENARIOS):
            for run in range(args.runs):
                say(f"== {backend} / {name} (run {run + 1}/{args.runs}, {sizes.name})")
                started = time.perf_counter()
                rows.extend(await SCENARIOS[name](env))
                say(f"   done in {time.perf_counter() - started:.1f} s")
    return rows


# -- the report -------------------------------------------------------------------------------


def render_report(
    rows: list[Measurement],
    header: dict[str, str],
    plots: list[str] | None,
    plot_dir: str = "",
) -> str:
    """The Markdown report; plot links point to `plot_dir` + name (None: no plot section)."""
    lines = ["# reactive benchmark results", ""]
    lines += [f"- {key}: {value}" for key, value in header.items()]
    lines.append("")
    stamp = _stamp(header)
    for scenario in _unique(row.scenario for row in rows):
        table = _scenario_table(scenario, [row for row in rows if row.scenario == scenario])
        lines += table[:2] + ([stamp, ""] if stamp else []) + table[2:]
        if plots and f"{_slug(scenario)}.png" in plots:
            lines += [f"![{scenario}]({plot_dir}{_slug(scenario)}.png)", ""]
    if plots is not None and not plots:
        lines += [NO_PLOTS, ""]
    return "\n".join(lines)


def _scenario_table(scenario: str, rows: list[Measurement]) -> list[str]:
    metrics = _unique(key for row in rows for key in row.metrics)
    grouped: dict[RowKey, list[Measurement]] = {}
    for row in rows:
        grouped.setdefault((row.scenario, row.backend, row.system, row.case), []).append(row)
    lines = [f"## {scenario}", "", "| backend | system | case | " + " | ".join(metrics) + " |"]
    lines.append("|---|---|---|" + "---:|" * len(metrics))
    for (_, backend, system, case), runs in grouped.items():
        cells = [_cell([r.metrics[m] for r in runs if m in r.metrics]) for m in metrics]
        lines.append(f"| {backend} | {system} | {case} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _cell(values: list[float]) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "-"
    if len(finite) == 1:
        return _number(finite[0])
    return f"{_number(statistics.median(finite))} ({_number(min(finite))}..{_number(max(finite))})"


def _number(value: float) -> str:
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower())


def publish(report: str, results_md: Path) -> None:
    """Put `report` into the marked section of RESULTS.md (appended the first time).

    Scenario by scenario: a scenario in `report` replaces its earlier table, the others stay
    as they were, so one scenario can be re-measured without re-running them all. Each
    scenario says which run measured it, and on what machine (its stamp). The header is the
    newest run's only when that run measured every scenario published so far; otherwise it
    stays, as it describes the tables that stay.
    """
    text = results_md.read_text() if results_md.exists() else ""
    # A run without matplotlib leaves the published plots as they were: no note about it.
    report = report.replace(f"\n{NO_PLOTS}\n", "\n")
    head, blocks = _split_report(report.replace("# reactive", "# Server", 1))
    if PUBLISH_BEGIN in text and PUBLISH_END in text:
        before, rest = text.split(PUBLISH_BEGIN, 1)
        old, after = rest.split(PUBLISH_END, 1)
        old_head, old_blocks = _split_report(old.strip("\n"))
        stamp = _stamp(_header_facts(old_head))
        merged = {name: _stamped(block, stamp) for name, block in old_blocks.items()}
        if not set(merged) <= set(blocks):
            head = old_head.strip("\n")
        blocks = {**merged, **blocks}
    else:
        before, after = text.rstrip("\n") + "\n\n", "\n"
    body = "\n".join([head.rstrip("\n"), *(block.rstrip("\n") for block in blocks.values())])
    results_md.write_text(f"{before}{PUBLISH_BEGIN}\n{body}\n\n{PUBLISH_END}{after}")


def _split_report(report: str) -> tuple[str, dict[str, str]]:
    """(header, {scenario: its section}) of a report; sections start with "## "."""
    head, *sections = report.split("\n## ")
    blocks = {}
    for section in sections:
        name = section.split("\n", 1)[0].strip()
        blocks[name] = f"\n## {section}"
    return head, blocks


def _header_facts(head: str) -> dict[str, str]:
    facts = {}
    for line in head.splitlines():
        if line.startswith("- ") and ": " in line:
            key, value = line[2:].split(": ", 1)
            facts[key] = value
    return facts


def _stamp(header: dict[str, str]) -> str:
    """The line under a scenario's heading that says which run measured it."""
    if "date" not in header or "command" not in header:
        return ""
    machine = [header[key] for key in ("cpu model", "cores") if key in header]
    on = f" on {'; '.join(machine)}" if machine else ""
    at = f" at commit {header['commit']}" if "commit" in header else ""
    return f"Measured {header['date']}{at} by `{header['command']}`{on}."


def _stamped(block: str, stamp: str) -> str:
    """`block` with `stamp` under its heading, unless it has one already."""
    heading, _, rest = block.lstrip("\n").partition("\n")
    if not stamp or rest.lstrip("\n").startswith("Measured "):
        return block
    return f"\n{heading}\n\n{stamp}\n{rest}"


def _cpu_plan_text(plan: CpuPlan | None) -> str:
    return plan.describe() if plan else "not pinned (server and bench clients share all cores)"


def _event_loop_runner() -> Any:
    """asyncio.run on uvloop when installed (it comes with uvicorn[standard], as the server
    uses it): the clients' own overhead is then a smaller part of every figure."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main(argv: list[str]) -> Path:
    args = parse_args(argv)
    cpus = CpuPlan.split() if args.pin else None
    started = datetime.now(UTC)
    header = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench " + " ".join(argv),
        "commit": code_version(),
        "seed": str(SEED),
        **machine_facts(),
        "cores": _cpu_plan_text(cpus),
    }
    say(f"# reactive benchmark: {header}")
    rows = _event_loop_runner()(run_all(args, cpus))
    out = args.out or BENCH / "results" / started.strftime("%Y%m%dT%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    header["duration"] = f"{(datetime.now(UTC) - started).total_seconds():.0f} s"
    plots = write_plots(rows, out)
    (out / "results.md").write_text(render_report(rows, header, plots))
    if args.publish:
        # bench/results/ is not committed; the published plots go to bench/plots/.
        published = BENCH / "plots"
        published.mkdir(exist_ok=True)
        for name in plots:
            shutil.copyfile(out / name, published / name)
        publish(render_report(rows, header, plots, "plots/"), BENCH / "RESULTS.md")
    say(f"results: {out / 'results.md'}")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
