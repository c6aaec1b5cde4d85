"""The report of `reactive check`: verdicts per function and column, the findings behind them,
and the table, notes and totals printed for the whole project."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from reactive.functions import FunctionKind


class Verdict(StrEnum):
    """One column of one function: YES, PUBLIC (auth) and NA (index, actions) pass."""

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"
    PUBLIC = "public"
    NA = "n/a"


_PASSING = frozenset({Verdict.YES, Verdict.PUBLIC, Verdict.NA})
_NO_AUTH = "no call to ctx.auth.get_user_identity(), directly or through project helpers"


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """A line of the project's source; `file` is relative to the project root."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """A fact about a function's code: where, what, and through which helpers it was reached."""

    location: Location
    message: str
    via: tuple[str, ...] = ()

    def __str__(self) -> str:
        route = f" (via {' -> '.join(self.via)})" if self.via else ""
        return f"{self.location} {self.message}{route}"

    def through(self, helper: str) -> Finding:
        return replace(self, via=(helper, *self.via))


@dataclass(frozen=True, slots=True)
class FunctionCheck:
    """The verdicts for one registered function, with the findings behind them.

    `index_findings`: the unindexed reads (NO) or what could not be followed (UNKNOWN).
    `auth_findings`: where the identity is read (YES) or what could not be followed (UNKNOWN).
    """

    path: str
    kind: FunctionKind
    internal: bool
    index: Verdict
    auth: Verdict
    index_findings: tuple[Finding, ...] = ()
    auth_findings: tuple[Finding, ...] = ()
    #: Indexed reads (ctx.db.get, with_index queries) seen along the calls followed.
    indexed_reads: int = 0
    #: Why the handler could not be analysed at all (both columns are then unknown).
    note: str = ""

    @property
    def label(self) -> str:
        return f"internal {self.kind.value}" if self.internal else self.kind.value

    @property
    def index_ok(self) -> bool:
        return self.index in _PASSING

    @property
    def auth_ok(self) -> bool:
        return self.auth in _PASSING

    @property
    def passes(self) -> bool:
        return self.index_ok and self.auth_ok

    def index_cell(self) -> str:
        if self.index is Verdict.NO:
            return f"no {self.index_findings[0].location}"
        return self.index.value

    def explanations(self) -> list[str]:
        """Why a failing column failed, one line each (auth only for scored functions)."""
        lines = [f"index: {finding}" for finding in self.index_findings if not self.index_ok]
        if not self.auth_ok and not self.internal:
            lines += [f"auth: {finding}" for finding in self.auth_findings]
            if self.auth is Verdict.NO:
                lines.append(f"auth: {_NO_AUTH}")
        if self.note:
            lines.append(self.note)
        return lines


@dataclass(frozen=True, slots=True)
class CheckReport:
    """Every registered function's verdicts. Internal functions are listed but not scored."""

    functions: tuple[FunctionCheck, ...]
    #: Project helpers through which some function reaches ctx.auth.get_user_identity().
    auth_helpers: tuple[str, ...] = ()

    @property
    def scored(self) -> tuple[FunctionCheck, ...]:
        return tuple(check for check in self.functions if not check.internal)

    @property
    def failures(self) -> tuple[FunctionCheck, ...]:
        return tuple(check for check in self.scored if not check.passes)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def index_coverage(self) -> tuple[int, int]:
        """(passed, counted) over public functions that read the database (not NA)."""
        counted = [check for check in self.scored if check.index is not Verdict.NA]
        return sum(check.index_ok for check in counted), len(counted)

    @property
    def auth_coverage(self) -> tuple[int, int]:
        return sum(check.auth_ok for check in self.scored), len(self.scored)

    def render(self) -> str:
        """The table (public functions, then internal ones), notes, and the totals line."""
        widths = _widths(self.functions)
        internal = [check for check in self.functions if check.internal]
        out = [_line(("function", "kind", "index", "auth"), widths)]
        out += _rows(self.scored, widths)
        if internal:
            out += ["", "internal functions (listed, not scored):", *_rows(internal, widths)]
        if self.auth_helpers:
            helpers = f"auth checked through: {', '.join(self.auth_helpers)}"
            out += ["", textwrap.fill(helpers, 100, subsequent_indent="    ")]
        out += ["", *_LIMITS, "", self.totals()]
        return "\n".join(out)

    def totals(self) -> str:
        return (
            f"index coverage {_percent(*self.index_coverage)}, "
            f"auth coverage {_percent(*self.auth_coverage)}"
        )


_LIMITS = (
    "notes: calls into functions/ are followed; ctx handed to anything else (dynamic dispatch,",
    "other packages, containers) is 'unknown' and fails. Targets of ctx.run_* and of the",
    "scheduler are checked on their own; HTTP actions are not checked; an action's index is",
    "n/a unless it reads ctx.db.",
)


def _percent(passed: int, counted: int) -> str:
    # Rounded down, so 99.6 % never shows as 100 %.
    share = "n/a" if counted == 0 else f"{passed * 100 // counted} %"
    return f"{share} ({passed}/{counted})"


def _widths(checks: Sequence[FunctionCheck]) -> list[int]:
    return [
        max([len("function"), *(len(check.path) for check in checks)]),
        max([len("kind"), *(len(check.label) for check in checks)]),
        max([len("index"), *(len(check.index_cell()) for check in checks)]),
    ]


def _rows(checks: Iterable[FunctionCheck], widths: Sequence[int]) -> list[str]:
    out: list[str] = []
    for check in checks:
        out.append(_line((check.path, check.label, check.index_cell(), check.auth.value), widths))
        out += [f"    {line}" for line in check.explanations()]
    return out


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
    return "  ".join([*padded, *cells[len(widths) :]]).rstrip()
