"""Smoke test of the benchmark harness: `python -m bench --quick --tiny` on real servers."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import parse_args, publish, render_report
from bench.baselines import pglite
from bench.harness import (
    SIZES,
    Measurement,
    RawSocket,
    Update,
    code_version,
    first_seen_ms,
    latency_metrics,
)
from bench.plots import write_plots
from bench.scenarios import SCENARIOS, cluster, fan_out, round_trip, throughput
from tests.node_tools import unavailable

REPO = Path(__file__).resolve().parent.parent


def _run_bench(out: Path, backend: str, *more: str) -> str:
    command = [sys.executable, "-m", "bench", "--quick", "--tiny", "--backend", backend, *more]
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
    rows = [r for r in _table(tiny_report, "scale") if r["backend"] == "sqlite"]
    case = f"{SIZES['tiny'].scale[0]:,} subs"
    ours = _finite(_find(rows, "ours (push)", case), "re-runs per commit")
    table_level = _finite(_find(rows, "table-level", case), "re-runs per commit")
    assert ours == pytest.approx(1.0, abs=0.5)
    assert table_level >= 10 * ours


def _table(report: str, scenario: str) -> list[dict[str, str]]:
    """The scenario's Markdown table as one dict per row, keyed by column header."""
    section = report.split(f"## {scenario}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        for line in lines[2:]
    ]


def _number(cell: str) -> float:
    """A table cell as a float; NaN for "-" (not measured)."""
    return float("nan") if cell == "-" else float(cell.split(" ")[0].replace(",", ""))


def _finite(row: dict[str, str], column: str) -> float:
    value = _number(row[column])
    assert math.isfinite(value), f"{column} is not a number in {row}"
    return value


def _find(rows: list[dict[str, str]], system: str, case: str) -> dict[str, str]:
    found = [r for r in rows if r["system"] == system and r["case"].startswith(case)]
    assert len(found) == 1, f"no single row {system!r} / {case!r} in {rows}"
    return found[0]


def test_fan_out_has_table_level_and_polling_with_ratios(tiny_report: str) -> None:
    rows = [r for r in _table(tiny_report, "fan-out") if r["backend"] == "sqlite"]
    for n in SIZES["tiny"].fan_out:
        case = f"{n:,} sockets"
        for system in ("ours (push)", "table-level", "table-level ÷ ours", "polling 1 s ÷ ours"):
            _finite(_find(rows, system, case), fan_out.HEADLINE)
        ours = _finite(_find(rows, "ours (push)", case), "re-runs per commit")
        table_level = _finite(_find(rows, "table-level", case), "re-runs per commit")
        # The other subscriptions re-run on every write under table-level, never on ours.
        assert ours == pytest.approx(1.0, abs=0.5)
        assert table_level >= fan_out.OTHER_SUBS
    polling = _find(rows, "polling 1 s", "any sockets")
    assert _finite(polling, fan_out.HEADLINE) == _finite(polling, "staleness p50 ms")


def test_throughput_has_inserts_with_live_subscriptions_on_both_servers(
    tiny_report: str,
) -> None:
    rows = [r for r in _table(tiny_report, "throughput") if r["backend"] == "sqlite"]
    for case in ("uncontended inserts", "transfers, Zipf alpha 0", "transfers, Zipf alpha 1.5"):
        _finite(_find(rows, "ours", case), "committed/s")
    live = f"inserts, {throughput.live_sub_count(SIZES['tiny']):,} live subs"
    for system in ("ours", "table-level", "table-level ÷ ours"):
        _finite(_find(rows, system, live), "committed/s")
        _finite(_find(rows, system, live), "re-runs per commit")


def test_round_trip_sets_our_mutation_beside_the_bare_insert(tiny_report: str) -> None:
    rows = [r for r in _table(tiny_report, round_trip.NAME) if r["backend"] == "sqlite"]
    for system in (round_trip.OURS, round_trip.BARE, f"{round_trip.OURS} ÷ {round_trip.BARE}"):
        _finite(_find(rows, system, round_trip.IDLE), "round trip p50 ms")
    assert _finite(_find(rows, round_trip.OURS, round_trip.LOADED), round_trip.RATE) > 0


def test_every_baseline_has_its_ratio_row_in_observe_scale_and_query_latency(
    tiny_report: str,
) -> None:
    observe = _table(tiny_report, "observe-insert")
    _finite(_find(observe, "polling 1 s ÷ ours", "1 subscriber"), "commit->seen p50 ms")
    scale = _table(tiny_report, "scale")
    for n in SIZES["tiny"].scale:
        case = f"{n:,} subs"
        _finite(_find(scale, "table-level ÷ ours", case), "re-runs per commit")
        # polling is hundreds of times staler than a push
        assert _finite(_find(scale, "polling 1 s ÷ ours", case), "commit->seen p50 ms") > 10
    queries = _table(tiny_report, "query-latency")
    for case in ("point get", "range of 1,000", "paginate"):  # prefixes, each matching one
        for system in ("ours (HTTP)", "ours (in process)"):
            _finite(_find(queries, system, case), "latency p50 ms")
    if any("unavailable" in r["case"] for r in observe + scale + queries):
        unavailable("PGlite baseline rows say unavailable", "the PGlite baseline")
    _finite(_find(observe, "PGlite ÷ ours", "1 subscriber"), "commit->seen p50 ms")
    for n in SIZES["tiny"].pglite_scale:
        _finite(_find(scale, "PGlite ÷ ours", f"{n:,} subs"), "re-runs per commit")
    for case in ("point get", "range of 1,000"):
        _finite(_find(queries, pglite.QUERY_SYSTEM, case), "latency p50 ms")
        _finite(_find(queries, "PGlite ÷ ours", case), "latency p50 ms")


def test_pglite_baselines_of_fan_out_and_throughput(tiny_report: str) -> None:
    """Present with numbers; "unavailable" only without node or the npm package, and then
    only outside CI (tests.node_tools)."""
    fan = _table(tiny_report, "fan-out")
    put = _table(tiny_report, "throughput")
    missing = [r["case"] for r in fan + put if "unavailable" in r["case"]]
    if missing:
        unavailable(f"PGlite baseline rows say {missing[0]!r}", "the PGlite baseline")
    for n in SIZES["tiny"].fan_out:
        row = _find(fan, pglite.SYSTEM, f"{n:,} live queries")
        assert row["backend"] == "pglite"
        _finite(row, fan_out.HEADLINE)
        assert _finite(row, "re-runs per commit") >= n + fan_out.OTHER_SUBS
        _finite(_find(fan, "PGlite ÷ ours", f"{n:,} sockets"), fan_out.HEADLINE)
    for case in ("uncontended inserts", "transfers, Zipf alpha 0", "transfers, Zipf alpha 1.5"):
        row = _find(put, pglite.SYSTEM, f"{case} (serial")
        _finite(row, "committed/s")
        assert _number(row["retries/s"]) == 0
        _finite(_find(put, "PGlite ÷ ours", case), "committed/s")


@pytest.mark.postgres
def test_tiny_run_on_postgres(tmp_path: Path) -> None:
    # The cluster scenario has its own test (below).
    scenarios = [name for name in SCENARIOS if name != cluster.NAME]
    report = _run_bench(tmp_path, "postgres", *(f"--scenario={name}" for name in scenarios))
    for scenario in scenarios:
        assert f"## {scenario}\n" in report and "| postgres |" in report


@pytest.mark.postgres
def test_tiny_cluster_of_one_two_and_three_nodes_on_postgres(tmp_path: Path) -> None:
    rows = _table(_run_bench(tmp_path, "postgres", "--scenario=cluster"), cluster.NAME)
    for count in cluster.NODES:
        (system,) = {
            r["system"]
            for r in rows
            if r["system"].startswith(f"{count} node") and "÷" not in r["system"]
        }
        for k in range(1, count + 1):
            row = _find(rows, system, f"commit->seen, writer on node 1, subscriber on node {k}")
            _finite(row, "commit->seen p50 ms")
            assert _number(row["missed"]) == 0
        fan = _find(rows, system, "fan-out")
        for column in (f"{cluster.FAN_OUT} p50 ms", cluster.PUSHES, "clients CPU %"):
            _finite(fan, column)
        for k in range(1, max(cluster.NODES) + 1):  # a CPU column per node, "-" for none
            assert math.isfinite(_number(fan[f"node {k} CPU %"])) == (k <= count)
        for case in ("uncontended inserts", "transfers, Zipf alpha 1.5"):
            row = _find(rows, system, case)
            _finite(row, "committed/s")
            assert _number(row["failed"]) == 0
        if count > 1:
            ratio = f"{count} nodes ÷ 1 node"
            _finite(_find(rows, ratio, "fan-out"), cluster.PUSHES)
            for case in ("uncontended inserts", "transfers, Zipf alpha 1.5"):
                _finite(_find(rows, ratio, case), "committed/s")


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


def test_publishing_one_scenario_keeps_the_others_with_the_run_that_measured_them(
    tmp_path: Path,
) -> None:
    results = tmp_path / "RESULTS.md"
    first = {"date": "day 1", "command": "python -m bench"}
    rows = [Measurement(s, "sqlite", "ours", "c", {"x ms": 1.0}) for s in ("a", "b")]
    publish(render_report(rows, first, None), results)
    again = [Measurement("b", "sqlite", "ours", "c", {"x ms": 2.0})]
    second = {"date": "day 2", "command": "python -m bench --scenario b"}
    publish(render_report(again, second, None), results)
    text = results.read_text()
    a_section = text.split("## a\n", 1)[1].split("## b\n", 1)[0]
    b_section = text.split("## b\n", 1)[1]
    assert "Measured day 1 by `python -m bench`." in a_section and "| 1 |" in a_section
    assert "Measured day 2 by `python -m bench --scenario b`." in b_section
    assert "| 2 |" in b_section and "| 1 |" not in b_section
    # The header describes the tables that stay; the one re-measured says its own run.
    assert "- date: day 1" in text and "- date: day 2" not in text
    third = {"date": "day 3", "command": "python -m bench", "cpu model": "X", "cores": "all"}
    third["commit"] = "abc123"
    publish(render_report(rows, third, None), results)
    text = results.read_text()
    assert "- date: day 3" in text and "- date: day 1" not in text  # all re-measured
    assert text.count("Measured day 3 at commit abc123 by `python -m bench` on X; all.") == 2


def test_the_report_names_the_commit_it_measured() -> None:
    head = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    version = code_version()
    assert version in (head, f"{head}+changes")
    header = {"date": "d", "command": "python -m bench", "commit": version}
    report = render_report([Measurement("a", "sqlite", "ours", "c", {"x ms": 1.0})], header, None)
    assert f"- commit: {version}" in report and f"at commit {version} by" in report


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


async def test_new_pglite_rows_say_unavailable_without_the_npm_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pglite, "PACKAGE", tmp_path)
    fan = await pglite.pglite_fan_out_rows("fan-out", SIZES["tiny"], 5)
    pairs = {0.0: throughput.draw_pairs(0.0, 3)}
    put = await pglite.pglite_throughput_rows("throughput", SIZES["tiny"], 100, pairs)
    for rows in (fan, put):
        assert len(rows) == 1 and rows[0].metrics == {} and "unavailable" in rows[0].case


def test_transfer_pairs_are_fixed_and_never_self_transfers() -> None:
    pairs = throughput.draw_pairs(1.5, 200)
    assert pairs == throughput.draw_pairs(1.5, 200)
    assert all(0 <= s < throughput.ACCOUNTS and 0 <= t < throughput.ACCOUNTS for s, t in pairs)
    assert all(s != t for s, t in pairs)
    # Skewed: alpha 1.5 draws the first account far more often than alpha 0 does.
    firsts = sum(s == 0 for s, _ in pairs)
    assert firsts > 3 * sum(s == 0 for s, _ in throughput.draw_pairs(0.0, 200))


def test_ratio_rows_divide_the_baseline_by_ours() -> None:
    ours = Measurement("fan-out", "sqlite", "ours (push)", "10 sockets", {fan_out.HEADLINE: 2.0})
    theirs = Measurement("fan-out", "sqlite", "table-level", "10 sockets", {fan_out.HEADLINE: 6.0})
    row = fan_out.ratio_row("sqlite", "table-level", theirs, ours)
    assert (row.system, row.case, row.metrics) == (
        "table-level ÷ ours",
        "10 sockets",
        {fan_out.HEADLINE: 3.0},
    )
    mine = Measurement(
        "throughput", "sqlite", "ours", "uncontended inserts", {"committed/s": 400.0}
    )
    serial = Measurement(
        "throughput",
        "pglite",
        pglite.SYSTEM,
        "uncontended inserts (serial)",
        {"committed/s": 100.0},
    )
    row = throughput.ratio_row(serial, mine, "sqlite")
    assert (row.system, row.case, row.metrics) == (
        "PGlite ÷ ours",
        "uncontended inserts",
        {"committed/s": 0.25},
    )


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
        *_fan_out_and_throughput_baseline_rows(),
    ]
    written = write_plots(rows, tmp_path)
    assert written == ["observe-insert.png", "fan-out.png", "scale.png", "throughput.png"]
    assert all((tmp_path / name).stat().st_size > 1000 for name in written)


def _fan_out_and_throughput_baseline_rows() -> list[Measurement]:
    headline = fan_out.HEADLINE
    return [
        Measurement("fan-out", "sqlite", "table-level", "100 sockets", {headline: 30.0}),
        Measurement("fan-out", "sqlite", "table-level ÷ ours", "100 sockets", {headline: 2.5}),
        Measurement("fan-out", "sqlite", "polling 1 s", "any sockets", {headline: 500.0}),
        Measurement("fan-out", "pglite", pglite.SYSTEM, "100 live queries", {headline: 80.0}),
        Measurement("throughput", "sqlite", "table-level", "inserts", {"committed/s": 900.0}),
        Measurement("throughput", "sqlite", "table-level ÷ ours", "inserts", {"committed/s": 0.3}),
        Measurement(
            "throughput",
            "pglite",
            pglite.SYSTEM,
            "uncontended inserts (serial, 1 connection)",
            {"committed/s": 1500.0, "retries/s": 0.0},
        ),
    ]
