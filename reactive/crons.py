"""Cron jobs as a project declares them (`functions/crons.py`: `crons = CronJobs()`), and when
each one is next due.

Schedules are in UTC, as Convex's: `interval` every so many seconds/minutes/hours, `hourly`,
`daily`, `weekly`, `monthly` at a UTC time, or `cron` with a standard five-field expression
(parsed by the `croniter` library). A bad schedule or a repeated name is refused when the file
is loaded, so a project that declares one never starts serving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from reactive.references import FunctionReference, reference_path
from reactive.types import Value
from reactive.values import check_value

__all__ = ["CronJob", "CronJobs", "next_run"]

_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_INTERVAL_UNITS_MS = {"seconds": 1000.0, "minutes": 60_000.0, "hours": 3_600_000.0}
_MAX_NAME_CHARS = 256

#: What a cron runs, and with which arguments.
_Ref = str | FunctionReference
_Args = dict[str, Value]


@dataclass(frozen=True, slots=True)
class CronJob:
    """One declared cron: its unique name, its schedule (as stored in `_cron_jobs`), the
    function it runs and the arguments it runs it with."""

    name: str
    schedule: dict[str, Value]
    path: str
    args: dict[str, Value] = field(default_factory=dict)


class CronJobs:
    """The cron jobs of a project: `crons.interval("name", {"minutes": 5}, ref, args)` etc."""

    def __init__(self) -> None:
        self.jobs: dict[str, CronJob] = {}

    def interval(
        self, name: str, every: dict[str, float], ref: _Ref, args: _Args | None = None
    ) -> None:
        """Run every `{"seconds": n}`, `{"minutes": n}` or `{"hours": n}` (exactly one)."""
        if (
            not isinstance(every, dict)
            or len(every) != 1
            or next(iter(every)) not in (_INTERVAL_UNITS_MS)
        ):
            raise ValueError(
                f"cron {name!r}: interval takes one of {{'seconds': n}}, {{'minutes': n}}, "
                f"{{'hours': n}}; got {every!r}"
            )
        unit, amount = next(iter(every.items()))
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
            raise ValueError(f"cron {name!r}: the interval must be a positive number: {every!r}")
        if not math.isfinite(amount):
            raise ValueError(f"cron {name!r}: the interval must be finite: {every!r}")
        millis = float(amount) * _INTERVAL_UNITS_MS[unit]
        self._add(name, {"kind": "interval", "ms": millis}, ref, args)

    def hourly(self, name: str, at: dict[str, int], ref: _Ref, args: _Args | None = None) -> None:
        """Every hour at `{"minuteUTC": m}`."""
        minute = _field(name, at, "minuteUTC", 0, 59)
        self.cron(name, f"{minute} * * * *", ref, args)

    def daily(self, name: str, at: dict[str, int], ref: _Ref, args: _Args | None = None) -> None:
        """Every day at `{"hourUTC": h, "minuteUTC": m}`."""
        self._at_time_of_day(name, at, "*", "*", ref, args)

    def weekly(self, name: str, at: dict[str, Any], ref: _Ref, args: _Args | None = None) -> None:
        """Every week on `{"dayOfWeek": "monday", "hourUTC": h, "minuteUTC": m}`."""
        day = at.get("dayOfWeek") if isinstance(at, dict) else None
        if day not in _DAYS:
            raise ValueError(f"cron {name!r}: dayOfWeek must be one of {', '.join(_DAYS)}")
        self._at_time_of_day(name, at, "*", str(_DAYS.index(day)), ref, args)

    def monthly(self, name: str, at: dict[str, int], ref: _Ref, args: _Args | None = None) -> None:
        """Every month on `{"day": d, "hourUTC": h, "minuteUTC": m}` (months without day `d`
        are skipped, as cron does)."""
        day = _field(name, at, "day", 1, 31)
        self._at_time_of_day(name, at, str(day), "*", ref, args)

    def _at_time_of_day(
        self, name: str, at: object, day: str, weekday: str, ref: _Ref, args: _Args | None
    ) -> None:
        """A cron at `at`'s hour and minute (UTC) on the days of month and of week given."""
        hour, minute = _time_of_day(name, at)
        self.cron(name, f"{minute} {hour} {day} * {weekday}", ref, args)

    def cron(self, name: str, expression: str, ref: _Ref, args: _Args | None = None) -> None:
        """Run on a standard five-field cron expression ("0 */2 * * *"), in UTC."""
        if (
            not isinstance(expression, str)
            or len(expression.split()) != 5
            or not croniter.is_valid(expression)
        ):
            raise ValueError(
                f"cron {name!r}: {expression!r} is not a valid cron expression "
                "(five fields: minute hour day-of-month month day-of-week, in UTC)"
            )
        self._add(name, {"kind": "cron", "expression": expression}, ref, args)

    def _add(
        self,
        name: str,
        schedule: dict[str, Value],
        ref: _Ref,
        args: _Args | None,
    ) -> None:
        if not isinstance(name, str) or not name or len(name) > _MAX_NAME_CHARS:
            raise ValueError(f"a cron needs a name (a non-empty string), got {name!r}")
        if name in self.jobs:
            raise ValueError(f"cron {name!r} is declared twice: cron names must be unique")
        try:
            path = reference_path(ref)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"cron {name!r}: {exc}") from None
        args = {} if args is None else args
        if not isinstance(args, dict):
            raise ValueError(f"cron {name!r}: args must be an object (dict), got {args!r}")
        check_value(args, f"cron {name!r} args")
        self.jobs[name] = CronJob(name, schedule, path, args)


def _time_of_day(name: str, at: object) -> tuple[int, int]:
    """`{"hourUTC": h, "minuteUTC": m}` of a daily, weekly or monthly cron, checked."""
    return _field(name, at, "hourUTC", 0, 23), _field(name, at, "minuteUTC", 0, 59)


def _field(name: str, at: object, key: str, low: int, high: int) -> int:
    value = at.get(key) if isinstance(at, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"cron {name!r}: {key} must be an integer from {low} to {high}")
    return value


def next_run(schedule: dict[str, Value], previous_ms: float | None, now_ms: float) -> float:
    """When a cron with `schedule` is next due (unix ms), after `now_ms`: the first slot of
    its schedule after both (slots missed while nobody ran it are skipped, not caught up).

    An interval counts from its previous slot (`previous_ms`; None: from now)."""
    if schedule["kind"] == "interval":
        every = float(schedule["ms"])  # type: ignore[arg-type]
        if previous_ms is None:
            return now_ms + every
        missed = max(0, math.floor((now_ms - previous_ms) / every))
        return previous_ms + (missed + 1) * every
    start = datetime.fromtimestamp(max(now_ms, previous_ms or 0.0) / 1000, tz=UTC)
    following = croniter(str(schedule["expression"]), start).get_next(float)
    return float(following) * 1000
