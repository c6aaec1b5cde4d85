"""Smoke test of the benchmark harness: `python -m bench --quick --tiny` on real servers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import parse_args, publish, render_report
from bench.baselines import pglite
from bench.harness import SIZES, Measurement, RawSocket, Update, first_seen_ms, latency_metrics
from bench.plots import write_plots
from bench.scenarios import SCENARIOS

REPO = Path(__file__).resolve().parent.parent


def _run_bench(out: Path, backend: str) -> str:
    command = [sys.executable, "-m", "bench", "--quick", "--tiny", "--backend", backend]
    completed = subprocess.run(
        [*command, "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=180
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return (out / "results.md").read_text()


def _table_rows(report: str, scenario: str) -> list[str]:
    section = report.split(f"## {scenario}\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| sqlite")]


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _run_bench(tmp_path_factory.mktemp("bench"), "sqlite")


def test_tiny_run_reports_every_scenario_with_baselines(tiny_report: str) -> None:
    report = tiny_report
    assert "- cpus: " in report and "- seed: 42" in report
    for scenario in SCENARIOS:
        assert _table_rows(report, scenario), f"no sqlite rows for {scenario}:\n{report}"
    scale = "\n".join(_table_rows(report, "scale"))
    for system in ("ours (push)", "table-level", "table-level ÷ ours", "polling 1 s"):
        assert f"| {system} |" in scale
    assert "| polling 1 s |" in "\n".join(_table_rows(report, "observe-insert"))
    observe = report.split("## observe-insert\n", 1)[1].split("\n## ", 1)[0]
    assert "| pglite | PGlite live (in process) | 1 subscriber" in observe
    for name in ("observe-insert", "fan-out", "scale", "throughput", "query-latency"):
        assert f"![{name}]({name}.png)" in report


def test_table_level_reruns_more_than_ours_in_tiny_scale(tiny_report: str) -> None:
    report = tiny_report
    header = report.split("## scale\n", 1)[1].splitlines()[1].split("|")
    column = [cell.strip() for cell in header].index("re-runs per commit")
    reruns = {
        row.split("|")[2].strip(): float(row.split("|")[column].strip().replace(",", ""))
        for row in _table_rows(report, "scale")
        if "polling" not in row and "÷" not in row
    }
    assert reruns["ours (push)"] == pytest.approx(1.0, abs=0.5)
    assert reruns["table-level"] >= 10 * reruns["ours (push)"]


@pytest.mark.postgres
def test_tiny_run_on_postgres(tmp_path: Path) -> None:
    report = _run_bench(tmp_path, "postgres")
    for scenario in SCENARIOS:
        assert f"## {scenario}\n" in report and "| postgres |" in report


def test_report_shows_median_and_range_over_runs() -> None:
    rows = [Measurement("s", "sqlite", "ours", "c", {"x ms": v}) for v in (3.0, 1.0, 2.0)]
    report = render_report(rows, {"cpus": "2"}, plots=[])
    assert "| sqlite | ours | c | 2 (1..3) |" in report


def test_publish_replaces_only_its_own_section(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Core\n\nkept\n")
    publish("# reactive benchmark results\n\nfirst", results)
    publish("# reactive benchmark results\n\nsecond", results)
    text = results.read_text()
    assert text.startswith("# Core\n\nkept\n") and "second" in text and "first" not in text


def test_first_seen_counts_each_query_once_and_ignores_unknown_ids() -> None:
    socket = RawSocket.__new__(RawSocket)
    socket.updates = [
        Update(5_000_000, 1, ("old", "a")),
        Update(9_000_000, 1, ("a",)),
        Update(7_000_000, 2, ("a",)),
    ]
    assert first_seen_ms([socket], {"a": 1_000_000}) == [4.0, 6.0]


def test_latency_metrics_and_bad_runs() -> None:
    assert latency_metrics("x", [1.0, 2.0, 3.0])["x p50 ms"] == 2.0
    with pytest.raises(SystemExit):
        parse_args(["--runs", "0"])


async def test_pglite_rows_say_unavailable_without_the_npm_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pglite, "PACKAGE", tmp_path)
    rows = await pglite.pglite_observe_rows("observe-insert", SIZES["tiny"])
    assert [(r.system, r.metrics) for r in rows] == [(pglite.SYSTEM, {})]
    assert "unavailable: run `npm ci` in bench/pglite" in rows[0].case
    report = render_report(rows, {}, plots=[])
    assert "| pglite | PGlite live (in process) | 1 subscriber (unavailable" in report


def test_plots_are_written_per_scenario_and_skip_unavailable_rows(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rows = [
        Measurement(
            "observe-insert",
            "sqlite",
            "ours (push)",
            "1 subscriber",
            {"commit->seen p50 ms": 1.5, "commit->seen p99 ms": 3.0},
        ),
        Measurement(
            "observe-insert",
            "sqlite",
            "polling 1 s",
            "1 subscriber",
            {"staleness p50 ms": 500.0, "staleness p99 ms": 990.0},
        ),
        Measurement("observe-insert", "pglite", pglite.SYSTEM, "1 subscriber (unavailable)", {}),
        Measurement(
            "fan-out",
            "sqlite",
            "ours (push)",
            "100 sockets",
            {"last client sees it ms (median of writes)": 12.0},
        ),
        Measurement(
            "scale",
            "sqlite",
            "ours (push)",
            "1,000 subs, 1,000 channels",
            {"re-runs per commit": 1.0, "commit->seen p50 ms": 2.0},
        ),
        Measurement(
            "scale",
            "sqlite",
            "table-level",
            "1,000 subs, 1,000 channels",
            {"re-runs per commit": 1000.0, "commit->seen p50 ms": 90.0},
        ),
        Measurement(
            "throughput",
            "sqlite",
            "ours",
            "uncontended inserts",
            {"committed/s": 3000.0, "retries/s": 0.0},
        ),
    ]
    written = write_plots(rows, tmp_path)
    assert written == ["observe-insert.png", "fan-out.png", "scale.png", "throughput.png"]
    assert all((tmp_path / name).stat().st_size > 1000 for name in written)
