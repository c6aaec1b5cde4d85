"""scheduler: jobs scheduled ahead through `ctx.scheduler`, run by the server's own runner
(in process, as `reactive serve` runs them): a burst of jobs all due at one instant, and a
steady stream due at a fixed rate. Lateness is how long after its due time a job's mutation
began (each run records it); jobs/s is how fast the burst drained. Target: p99 lateness under
50 ms at 200 jobs/s."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

from bench.harness import BenchEnv, Measurement, database_url, latency_metrics, say
from reactive import knobs
from reactive.application import Application
from reactive.scheduler import BY_STATE, SCHEDULED_TABLE
from reactive.transaction import Transaction
from reactive.values import loads_stored

__all__ = ["NAME", "run"]

NAME = "scheduler"
PROJECT = Path(__file__).resolve().parent.parent / "projects" / "jobs"
#: Jobs per scheduling mutation: Convex's (and our) limit is 1,000 per function.
_PER_MUTATION = 1000
#: Time to schedule everything before the first job falls due.
_LEAD_S = 3.0
#: (burst jobs, steady seconds) per size; the steady rate is 200 jobs/s.
_SIZES = {"tiny": (200, 1.0), "quick": (2000, 5.0)}
_FULL = (10_000, 15.0)
RATE = 200.0


async def run(env: BenchEnv) -> list[Measurement]:
    burst, steady_s = _SIZES.get(env.sizes.name, _FULL)
    return [
        await _phase(env, f"burst of {burst:,} due at once", [0.0] * burst),
        await _phase(
            env,
            f"steady {RATE:.0f} jobs/s for {steady_s:g} s",
            [i / RATE * 1000 for i in range(int(RATE * steady_s))],
        ),
    ]


async def _phase(env: BenchEnv, case: str, offsets_ms: list[float]) -> Measurement:
    # Collect as a server process does (reactive.http: what is loaded is frozen, young
    # collections are rarer), so this process's earlier garbage is not counted as lateness.
    gc.collect()
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(knobs.GC_YOUNG_THRESHOLD, *threshold[1:])
    try:
        return await _measure(env, case, offsets_ms)
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


async def _measure(env: BenchEnv, case: str, offsets_ms: list[float]) -> Measurement:
    async with database_url(env.backend) as url:
        app = await Application.start(PROJECT, url, dev=False)
        try:
            start = time.time() * 1000 + _LEAD_S * 1000
            dues = [start + offset for offset in offsets_ms]
            for i in range(0, len(dues), _PER_MUTATION):
                outcome = await app.run_mutation(
                    "jobs:schedule", {"dues": dues[i : i + _PER_MUTATION]}
                )
                if outcome.error is not None:
                    raise RuntimeError(f"scheduling failed: {outcome.error.message}")
            runs = await _wait_for_runs(app, len(dues), max(dues))
        finally:
            await app.close()
    lateness = [float(run[0]) for run in runs]
    last = max(float(run[1]) for run in runs)
    metrics = latency_metrics("lateness", lateness)
    metrics["jobs/s"] = len(runs) / max(1e-3, (last - start) / 1000)
    say(
        f"    {env.backend}, {case}: lateness p50 {metrics['lateness p50 ms']:.1f} ms, "
        f"p99 {metrics['lateness p99 ms']:.1f} ms, {metrics['jobs/s']:.0f} jobs/s"
    )
    return Measurement(NAME, env.backend, "ours", case, metrics)


async def _wait_for_runs(
    app: Application, count: int, last_due: float
) -> list[tuple[float, float]]:
    """Every job's (lateness, end) once all ran. Waits for the last due time, then polls the
    runner's own index for a pending job (one entry read): reading the runs while jobs run
    would take the event loop from them and count as their lateness."""
    await asyncio.sleep(max(0.0, (last_due - time.time() * 1000) / 1000))
    while await _any_pending(app):
        await asyncio.sleep(0.2)
    runs = await _runs(app)
    if len(runs) != count:
        raise RuntimeError(f"{count} jobs scheduled, {len(runs)} ran")
    return runs


async def _any_pending(app: Application) -> bool:
    async def read(tx: Transaction) -> bool:
        query = tx.query(SCHEDULED_TABLE).with_index(
            BY_STATE, lambda q: q.eq("state.kind", "pending")
        )
        return await query.first() is not None

    return (await app.db.run_query(read)).value


async def _runs(app: Application) -> list[tuple[float, float]]:
    rows: list[tuple[float, float]] = []
    number = app.db.catalog.table_number("runs")
    if number is None:
        return rows
    async for doc in app.db.iter_documents(number, app.db.latest_ts):
        value = loads_stored(doc.value)
        assert isinstance(value, dict)
        rows.append((float(value["late"]), float(value["at"])))
    return rows
