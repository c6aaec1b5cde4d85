"""The benchmark scenarios, by name, in the order they run; each is `run(env) -> rows`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.harness import BenchEnv, Measurement
from bench.scenarios import (
    cluster,
    fan_out,
    observe_insert,
    query_latency,
    round_trip,
    scale,
    scheduler,
    search,
    throughput,
)

__all__ = ["SCENARIOS", "Scenario"]

Scenario = Callable[[BenchEnv], Awaitable[list[Measurement]]]

SCENARIOS: dict[str, Scenario] = {
    module.NAME: module.run
    for module in (
        observe_insert,
        fan_out,
        scale,
        throughput,
        round_trip,
        query_latency,
        scheduler,
        cluster,
        search,
    )
}
