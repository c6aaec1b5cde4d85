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

__all__ = ["SYSTEM", "PgliteUnavailable", "pglite_observe_rows", "pglite_scale_rows", "run_pglite"]

SYSTEM = "PGlite live (in process)"
BACKEND = "pglite"
PACKAGE = Path(__file__).resolve().parent.parent / "pglite"
SCRIPT = PACKAGE / "live_bench.mjs"
TIMEOUT_S = 300.0


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
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        orjson.dumps(options).decode(),
        cwd=PACKAGE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        return PgliteUnavailable(f"timed out after {TIMEOUT_S:g} s")
    if process.returncode != 0:
        last = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return PgliteUnavailable(f"node exited {process.returncode}: {last[0][:120]}")
    return orjson.loads(stdout.splitlines()[-1])


def _latency(prefix: str, summary: dict[str, float | None]) -> dict[str, float]:
    return {
        f"{prefix} {key} ms": float("nan") if summary[key] is None else float(summary[key] or 0)
        for key in ("p50", "p99", "max")
    }


def _unavailable(scenario: str, case: str, why: PgliteUnavailable) -> list[Measurement]:
    return [Measurement(scenario, BACKEND, SYSTEM, f"{case} (unavailable: {why.reason})", {})]


async def pglite_observe_rows(scenario: str, sizes: Sizes) -> list[Measurement]:
    """One live query of the latest 10 of a channel, one writer: commit->seen and inserts/s."""
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
        "inserts/s": float(observe["insertsPerS"]),
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
