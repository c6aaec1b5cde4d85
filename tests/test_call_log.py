"""The call log: a ring of recent calls bounded in entries and in bytes, and its followers."""

from __future__ import annotations

import asyncio
import time

from reactive import knobs
from reactive.call_log import MAX_ERROR_CHARS, CallLog


def _record(log: CallLog, *, path: str = "m:f", error: str | None = None, lines=()) -> None:
    log.record("query", path, time.perf_counter(), error is None, error, list(lines))


def test_the_ring_keeps_the_newest_entries_up_to_its_count():
    log = CallLog(max_entries=3, max_bytes=1 << 20)
    for i in range(10):
        _record(log, path=f"m:f{i}")
    assert [r.path for r in log.recent()] == ["m:f7", "m:f8", "m:f9"]


def test_the_ring_is_bounded_in_bytes_not_only_in_entries():
    log = CallLog(max_entries=1000, max_bytes=100_000)
    for _ in range(100):
        _record(log, lines=["[LOG] " + "x" * 4000] * 5)  # ~20 kB a call
    assert log.recent_bytes() <= 100_000
    assert 1 <= len(log.recent()) <= 5
    assert log.recent_bytes() == sum(r.size() for r in log.recent())


def test_a_huge_path_or_error_is_kept_cut_short():
    log = CallLog()
    _record(log, path="p" * (4 << 20), error="e" * (4 << 20))
    (kept,) = log.recent()
    assert len(kept.path) < knobs.MAX_FUNCTION_PATH_CHARS + 50
    assert kept.path.endswith(f"({4 << 20} characters)")
    assert kept.error is not None and len(kept.error) < MAX_ERROR_CHARS + 50


def test_a_follower_that_stops_reading_loses_records_not_memory():
    async def scenario():
        log = CallLog(max_entries=1000, max_bytes=50_000)
        follower = log.follow()
        first = asyncio.ensure_future(anext(follower))
        await asyncio.sleep(0)  # the follower is registered and waiting
        for _ in range(100):
            _record(log, lines=["[LOG] " + "x" * 4000] * 5)
        got = [await first]
        while True:
            try:
                got.append(await asyncio.wait_for(anext(follower), 0.05))
            except TimeoutError:
                break
        await follower.aclose()
        return got

    got = asyncio.run(scenario())
    assert 1 < len(got) < 10  # what fit in 50 kB, not all 100 calls
