"""The PGlite baseline: live queries of an embedded Postgres (WASM, in memory) in a Node process.

bench/pglite/live_bench.mjs does the work and prints one JSON object; this module runs it and
turns it into rows. When node or the npm package is missing, the rows say "unavailable" (with
the reason) instead of failing the run.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.harness import Measurement, Sizes

__all__ = [
    "QUERY_SYSTEM",
    "SYSTEM",
    "PgliteUnavailable",
    "pglite_fan_out_rows",
    "pglite_observe_rows",
    "pglite_query_rows",
    "pglite_scale_rows",
    "pglite_throughput_rows",
    "run_pglite",
]

SYSTEM = "PGlite live (in process)"
#: One-shot reads are not live queries.
QUERY_SYSTEM = "PGlite (in process)"
BACKEND = "pglite"
PACKAGE = Path(__file__).resolve().parent.parent / "pglite"
SCRIPT = PACKAGE / "live_bench.mjs"
TIMEOUT_S = 300.0
#: Insert+transfer rounds before the throughput baseline measures (bounded by the time): Node
#: compiles PGlite's WASM to optimised code only once it is hot, and until then PGlite runs
#: several times slower (about 500 rounds, 2 s on one core, reach the steady rate).
THROUGHPUT_WARMUP_ROUNDS = 500
THROUGHPUT_WARMUP_MAX_S = 5.0


@dataclass(frozen=True, slots=True)
class PgliteUnavailable:
    """Why the baseline could not run (shown in the case column)."""

    reason: str


async def run_pglite(options: dict[str, Any]) -> dict[str, Any] | PgliteUnavailable:
    """Run the Node script with `options`; its parsed output, or why it could not run."""
    node = shutil.which("node")
    if node is None:
        return PgliteUnavailable("node not installed")
    if not (PACKAGE / "node_modules" / "@electric-sql" / "pglite").is_dir():
        return PgliteUnavailable("run `npm ci` in bench/pglite")
    # Options go on stdin: the throughput's pre-drawn pairs can outgrow one argv string.
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        cwd=PACKAGE,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(
            process.communicate(orjson.dumps(options)), TIMEOUT_S
        )
    except TimeoutError:
        process.kill()
        await process.wait()
        return PgliteUnavailable(f"timed out after {TIMEOUT_S:g} s")
    if process.returncode != 0:
        last = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return PgliteUnavailable(f"node exited {process.returncode}: {last[0][:120]}")
    return orjson.loads(stdout.splitlines()[-1])


def _ms(value: float | None) -> float:
    """A latency from the script; None (nothing measured) becomes NaN."""
    return float("nan") if value is None else float(value)


def _latency(prefix: str, summary: dict[str, float | None]) -> dict[str, float]:
    return {f"{prefix} {key} ms": _ms(summary[key]) for key in ("p50", "p99", "max")}


def _unavailable(scenario: str, case: str, why: PgliteUnavailable) -> list[Measurement]:
    return [Measurement(scenario, BACKEND, SYSTEM, f"{case} (unavailable: {why.reason})", {})]


async def pglite_observe_rows(scenario: str, sizes: Sizes) -> list[Measurement]:
    """One live query of the latest 10 of a channel, one writer: commit->seen and the INSERT's
    own time (warmed-up inserts/s are in the throughput scenario)."""
    result = await run_pglite(
        {"observe": True, "writes": sizes.observe_writes, "warmup": sizes.warmup, "scale": []}
    )
    if isinstance(result, PgliteUnavailable):
        return _unavailable(scenario, "1 subscriber", result)
    observe = result["observe"]
    metrics = {
        **_latency("commit->seen", observe["commitToSeen"]),
        **_latency("mutation round trip", observe["insert"]),
        "missed writes": float(observe["missed"]),
    }
    return [Measurement(scenario, BACKEND, SYSTEM, "1 subscriber", metrics)]


async def pglite_scale_rows(scenario: str, sizes: Sizes) -> list[Measurement]:
    """N live queries over min(N, channels) channels, one writer; callbacks per commit."""
    if not sizes.pglite_scale:
        return []
    result = await run_pglite(
        {
            "observe": False,
            "scale": list(sizes.pglite_scale),
            "channels": sizes.scale_channels,
            "scaleWrites": sizes.pglite_scale_writes,
            "budgetMs": sizes.subscribe_budget_s * 1000,
        }
    )
    if isinstance(result, PgliteUnavailable):
        return _unavailable(scenario, f"{sizes.pglite_scale[0]:,} subs", result)
    return [_scale_row(scenario, step) for step in result["scale"]]


def _scale_row(scenario: str, step: dict[str, Any]) -> Measurement:
    case = f"{step['requested']:,} subs, {step['channels']:,} channels"
    metrics = {
        "subscriptions reached": float(step["reached"]),
        "commits": float(step["commits"]),
        # Live callbacks run: PGlite re-runs every live query over a written table.
        "re-runs per commit": float(step["callbacksPerCommit"]),
        **_latency("commit->seen", step["commitToSeen"]),
        "missed writes": float(step["missed"]),
    }
    return Measurement(scenario, BACKEND, SYSTEM, case, metrics)


async def pglite_fan_out_rows(scenario: str, sizes: Sizes, others: int) -> list[Measurement]:
    """Per fan-out size N: N live queries on the same SQL, `others` live queries on other
    channels open too; INSERT resolved -> the last of the N callbacks listing the new id."""
    result = await run_pglite(
        {
            "observe": False,
            "fanOut": list(sizes.fan_out),
            "fanOutWrites": sizes.fan_out_writes,
            "warmup": sizes.warmup,
            "others": others,
        }
    )
    if isinstance(result, PgliteUnavailable):
        return _unavailable(scenario, f"{sizes.fan_out[0]:,} live queries", result)
    return [_fan_out_row(scenario, step) for step in result["fanOut"]]


def _fan_out_row(scenario: str, step: dict[str, Any]) -> Measurement:
    last_seen = step["lastSeen"]["p50"]  # None when every write was missed
    metrics = {
        "last client sees it ms (median of writes)": _ms(last_seen),
        **_latency("per-client commit->seen", step["perQuery"]),
        # Live callbacks per commit: the N watchers and every other live query (table-level).
        "re-runs per commit": float(step["callbacksPerCommit"]),
        "missed writes": float(step["missed"]),
    }
    return Measurement(scenario, BACKEND, SYSTEM, f"{step['sockets']:,} live queries", metrics)


async def pglite_throughput_rows(
    scenario: str, sizes: Sizes, accounts: int, pairs: dict[float, list[tuple[int, int]]]
) -> list[Measurement]:
    """Back-to-back inserts and the given transfers (account index pairs, per Zipf alpha) in
    one PGlite: one connection, so transactions run one at a time and none is retried."""
    transfers = [
        {"alpha": alpha, "pairs": [i for pair in drawn for i in pair]}
        for alpha, drawn in pairs.items()
    ]
    options = {
        "observe": False,
        "throughput": {
            "inserts": sizes.inserts,
            "warmup": {
                "rounds": THROUGHPUT_WARMUP_ROUNDS,
                "maxMs": THROUGHPUT_WARMUP_MAX_S * 1000,
            },
            "accounts": accounts,
            "transfers": transfers,
        },
    }
    result = await run_pglite(options)
    if isinstance(result, PgliteUnavailable):
        return _unavailable(scenario, "uncontended inserts", result)
    throughput = result["throughput"]
    rows = [_throughput_row(scenario, "uncontended inserts", throughput["insertsPerS"], 0)]
    for run in throughput["transfers"]:
        case = f"transfers, Zipf alpha {run['alpha']:g}"
        rows.append(_throughput_row(scenario, case, run["committedPerS"], run["failed"]))
    return rows


def _throughput_row(scenario: str, case: str, per_s: float, failed: int) -> Measurement:
    metrics = {"committed/s": float(per_s), "retries/s": 0.0, "failed": float(failed)}
    return Measurement(scenario, BACKEND, SYSTEM, f"{case} (serial, 1 connection)", metrics)


async def pglite_query_rows(
    scenario: str, messages: int, warmup: int, runs: int
) -> list[Measurement]:
    """The query-latency shapes in process against `messages` rows of one channel."""
    options = {"observe": False, "queries": {"messages": messages, "warmup": warmup, "runs": runs}}
    result = await run_pglite(options)
    if isinstance(result, PgliteUnavailable):
        return _unavailable(scenario, "point get", result)
    return [
        Measurement(scenario, BACKEND, QUERY_SYSTEM, case, _latency("latency", summary))
        for case, summary in result["queries"].items()
    ]
