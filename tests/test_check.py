"""`reactive check`: sample projects in tests/projects/check_samples, small projects written
per test into tmp_path, and the seed app itself, which must pass both columns."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from reactive.functions import FunctionKind
from reactive.tools.check import CheckReport, FunctionCheck, Location, Verdict, run_check

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(__file__).resolve().parent / "projects" / "check_samples"

PRELUDE = """\
from reactive.functions import action, internal_query, mutation, query
from reactive.validators import v
"""


@pytest.fixture(scope="module")
def mixed() -> CheckReport:
    return run_check(SAMPLES / "mixed")


@pytest.fixture(scope="module")
def clean() -> CheckReport:
    return run_check(SAMPLES / "clean")


def row(report: CheckReport, path: str) -> FunctionCheck:
    found = [check for check in report.functions if check.path == path]
    assert len(found) == 1, f"{path} not in {[c.path for c in report.functions]}"
    return found[0]


def marked(project: str, file: str, marker: str) -> Location:
    """The line of `file` (relative to the sample project) carrying `# check: <marker>`."""
    lines = (SAMPLES / project / file).read_text().splitlines()
    numbers = [n for n, line in enumerate(lines, start=1) if line.endswith(f"# check: {marker}")]
    assert len(numbers) == 1, f"marker {marker!r} in {file}: {numbers}"
    return Location(file, numbers[0])


def check_project(tmp_path: Path, source: str) -> CheckReport:
    """Write `functions/m.py` (PRELUDE + source) under tmp_path and check that project."""
    (tmp_path / "functions").mkdir()
    (tmp_path / "functions" / "m.py").write_text(PRELUDE + textwrap.dedent(source))
    return run_check(tmp_path)


def check_source(tmp_path: Path, source: str) -> FunctionCheck:
    """The row of `m:f` in a project made of `source`."""
    return row(check_project(tmp_path, source), "m:f")


# -- the mixed sample: one function per case --------------------------------------------------


def test_indexed_query_with_auth_two_helpers_deep_passes(mixed: CheckReport) -> None:
    check = row(mixed, "tasks:byProject")
    assert (check.index, check.auth) == (Verdict.YES, Verdict.YES)
    assert check.indexed_reads == 1
    (identity_read,) = check.auth_findings
    assert identity_read.location == marked("mixed", "functions/lib/guard.py", "identity read")
    assert identity_read.via == ("lib.access.require_member", "lib.guard.signed_in")


def test_full_table_scan_fails_at_its_line(mixed: CheckReport) -> None:
    check = row(mixed, "tasks:everything")
    assert (check.index, check.auth) == (Verdict.NO, Verdict.YES)
    assert check.index_findings[0].location == marked("mixed", "functions/tasks.py", "full scan")
    assert "full_table_scan() of 'tasks'" in check.index_findings[0].message
    assert not check.passes


def test_implicit_scan_followed_by_filter_fails(mixed: CheckReport) -> None:
    check = row(mixed, "tasks:openOnes")
    assert check.index is Verdict.NO
    (scan,) = check.index_findings
    assert scan.location == marked("mixed", "functions/tasks.py", "implicit scan")
    assert "without with_index()" in scan.message
    assert ".filter() does not narrow" in scan.message


def test_scan_inside_a_helper_is_reported_at_the_helper_line(mixed: CheckReport) -> None:
    check = row(mixed, "tasks:viaHelper")
    assert check.index is Verdict.NO
    (scan,) = check.index_findings
    assert scan.location == marked("mixed", "functions/lib/reads.py", "helper scan")
    assert scan.via == ("lib.reads.all_tasks",)
    assert check.index_cell() == f"no {scan.location}"


def test_builder_from_a_helper_indexed_by_the_caller_passes(mixed: CheckReport) -> None:
    check = row(mixed, "tasks:builtByHelper")
    assert (check.index, check.auth) == (Verdict.YES, Verdict.YES)
    assert check.indexed_reads == 2


def test_function_without_auth_fails_the_auth_column(mixed: CheckReport) -> None:
    check = row(mixed, "tasks:unguarded")
    assert (check.index, check.auth) == (Verdict.YES, Verdict.NO)
    assert check.indexed_reads == 1  # ctx.db.get is by_id
    assert any("no call to ctx.auth.get_user_identity()" in line for line in check.explanations())


def test_public_by_design_passes_the_auth_column(mixed: CheckReport) -> None:
    check = row(mixed, "tasks:stats")
    assert (check.index, check.auth) == (Verdict.YES, Verdict.PUBLIC)
    assert check.passes


def test_dynamic_dispatch_is_unknown_and_fails(mixed: CheckReport) -> None:
    check = row(mixed, "tasks:dynamic")
    assert (check.index, check.auth) == (Verdict.UNKNOWN, Verdict.UNKNOWN)
    where = marked("mixed", "functions/tasks.py", "dynamic dispatch")
    assert [f.location for f in check.auth_findings] == [where]
    assert "ctx handed to check()" in check.auth_findings[0].message
    assert check in CheckReport((check,)).failures


def test_action_calling_a_mutation_is_checked_apart_from_it(mixed: CheckReport) -> None:
    checkout, refresh = row(mixed, "billing:checkout"), row(mixed, "billing:refreshAll")
    assert (checkout.kind, checkout.index, checkout.auth) == (
        FunctionKind.ACTION,
        Verdict.NA,
        Verdict.YES,
    )
    assert (refresh.index, refresh.auth) == (Verdict.NA, Verdict.NO)
    record = row(mixed, "billing:record")  # the mutation: its own row, its own scan
    assert record.internal and record.index is Verdict.NO
    where = marked("mixed", "functions/billing.py", "internal scan")
    assert record.index_findings[0].location == where


def test_internal_functions_are_listed_but_not_scored(mixed: CheckReport) -> None:
    assert row(mixed, "tasks:dump").internal
    assert {c.path for c in mixed.failures} == {
        "billing:refreshAll",
        "tasks:dynamic",
        "tasks:everything",
        "tasks:openOnes",
        "tasks:unguarded",
        "tasks:viaHelper",
    }
    assert not mixed.ok
    # index: 8 public queries/mutations (actions are n/a); auth: all 10 public functions
    assert mixed.index_coverage == (4, 8)
    assert mixed.auth_coverage == (7, 10)


def test_render_has_the_table_the_offending_lines_and_the_totals(mixed: CheckReport) -> None:
    text = mixed.render()
    lines = text.splitlines()
    assert lines[0].split() == ["function", "kind", "index", "auth"]
    everything = next(line for line in lines if line.startswith("tasks:everything "))
    full_scan = marked("mixed", "functions/tasks.py", "full scan")
    assert everything.split() == ["tasks:everything", "query", "no", str(full_scan), "yes"]
    internal_at = lines.index("internal functions (listed, not scored):")
    assert any(line.startswith("tasks:dump ") for line in lines[internal_at:])
    assert "auth checked through: lib.access.require_member, lib.guard.signed_in" in text
    assert lines[-1] == "index coverage 50 % (4/8), auth coverage 70 % (7/10)"


# -- the clean sample and the seed app --------------------------------------------------------


def test_clean_project_passes_with_module_imports_and_aliases(clean: CheckReport) -> None:
    assert clean.ok, clean.render()
    assert clean.render().splitlines()[-1] == (
        "index coverage 100 % (4/4), auth coverage 100 % (4/4)"
    )
    assert row(clean, "notes:mine").indexed_reads == 1  # the async comprehension ran it
    assert row(clean, "notes:remove").auth is Verdict.YES  # the check sits in a try
    assert clean.auth_helpers == ("lib.who.subject",)


def test_seed_app_passes_both_columns() -> None:
    report = run_check(REPO)
    assert report.ok, "\n" + report.render()
    assert report.totals().startswith("index coverage 100 % (")
    assert report.index_coverage[1] > 0 and report.auth_coverage[1] > 0
    assert {"lib.auth.require_auth", "lib.auth.require_project_access"} <= set(report.auth_helpers)


# -- small projects: what the analysis follows and where it gives up --------------------------


def test_scan_on_one_branch_fails(tmp_path: Path) -> None:
    check = check_source(
        tmp_path,
        """
        @query(args={"all": v.boolean()})
        async def f(ctx, args):
            await ctx.auth.get_user_identity()
            if args["all"]:
                rows = ctx.db.query("t").full_table_scan()
            else:
                rows = ctx.db.query("t").with_index("by_creation_time")
            return await rows.collect()
        """,
    )
    assert check.index is Verdict.NO
    assert check.index_findings[0].location == Location("functions/m.py", 8)


def test_async_for_and_a_bare_await_run_the_query(tmp_path: Path) -> None:
    check = check_source(
        tmp_path,
        """
        @query(args={})
        async def f(ctx, args):
            await ctx.auth.get_user_identity()
            async for doc in ctx.db.query("a"):
                pass
            return await ctx.db.query("b")
        """,
    )
    assert [f.location.line for f in check.index_findings] == [7, 9]


def test_query_that_is_never_run_is_no_read(tmp_path: Path) -> None:
    check = check_source(
        tmp_path,
        """
        @query(args={})
        async def f(ctx, args):
            await ctx.auth.get_user_identity()
            ctx.db.query("t")
            return None
        """,
    )
    assert check.index is Verdict.YES and check.indexed_reads == 0


def test_loop_that_may_skip_with_index_fails(tmp_path: Path) -> None:
    check = check_source(
        tmp_path,
        """
        @query(args={"ids": v.array(v.string())})
        async def f(ctx, args):
            await ctx.auth.get_user_identity()
            rows = ctx.db.query("t")
            for _ in args["ids"]:
                rows = rows.with_index("by_creation_time")
            return await rows.take(1)
        """,
    )
    assert check.index is Verdict.NO


def test_ctx_handed_to_code_outside_the_project_is_unknown(tmp_path: Path) -> None:
    check = check_source(
        tmp_path,
        """
        import functools

        async def signed_in(ctx):
            return await ctx.auth.get_user_identity()

        @query(args={})
        async def f(ctx, args):
            return await functools.partial(signed_in, ctx)()
        """,
    )
    assert (check.index, check.auth) == (Verdict.UNKNOWN, Verdict.UNKNOWN)
    assert "handed to functools.partial()" in check.auth_findings[0].message


def test_ctx_db_stored_in_a_container_is_unknown(tmp_path: Path) -> None:
    check = check_source(
        tmp_path,
        """
        @mutation(args={})
        async def f(ctx, args):
            await ctx.auth.get_user_identity()
            tools = {"db": ctx.db}
            return await tools["db"].query("t").collect()
        """,
    )
    assert check.index is Verdict.UNKNOWN
    assert check.index_findings[0].message == "ctx.db put in a container; not followed"


def test_unindexed_query_handed_away_counts_as_a_scan(tmp_path: Path) -> None:
    check = check_source(
        tmp_path,
        """
        import operator

        @query(args={})
        async def f(ctx, args):
            await ctx.auth.get_user_identity()
            rows = ctx.db.query("t").filter(lambda q: q.eq(1, 1))
            return await operator.methodcaller("collect")(rows)
        """,
    )
    assert check.index is Verdict.NO
    (scan,) = check.index_findings
    assert scan.location == Location("functions/m.py", 9)
    assert "handed to operator.methodcaller('collect')(), not project code at line 10" in str(scan)


def test_inspecting_builtins_do_not_make_ctx_unknown(tmp_path: Path) -> None:
    check = check_source(
        tmp_path,
        """
        @query(args={})
        async def f(ctx, args):
            assert isinstance(ctx, object) and hasattr(ctx, "db")
            return await ctx.auth.get_user_identity()
        """,
    )
    assert (check.index, check.auth) == (Verdict.YES, Verdict.YES)


def test_helpers_called_with_keywords_closures_and_recursion(tmp_path: Path) -> None:
    check = check_source(
        tmp_path,
        """
        async def scan(*, db, depth):
            if depth:
                return await scan(db=db, depth=depth - 1)
            return await db.query("t").collect()

        @query(args={})
        async def f(ctx, args):
            async def guard():
                return await ctx.auth.get_user_identity()

            await guard()
            return await scan(db=ctx.db, depth=3)
        """,
    )
    assert (check.index, check.auth) == (Verdict.NO, Verdict.YES)
    assert check.index_findings[0].location == Location("functions/m.py", 7)
    assert check.auth_findings[0].via == ("guard",)


def test_arguments_through_star_args_are_unknown(tmp_path: Path) -> None:
    check = check_source(
        tmp_path,
        """
        async def signed_in(*parts):
            return await parts[0].auth.get_user_identity()

        @query(args={})
        async def f(ctx, args):
            return await signed_in(ctx)
        """,
    )
    assert check.auth is Verdict.UNKNOWN
    assert "through *args/**kwargs" in check.auth_findings[0].message


def test_helper_with_an_unknown_decorator_is_not_followed(tmp_path: Path) -> None:
    check = check_source(
        tmp_path,
        """
        import functools

        @functools.lru_cache
        def signed_in(ctx):
            return ctx.auth.get_user_identity()

        @query(args={})
        async def f(ctx, args):
            return await signed_in(ctx)
        """,
    )
    assert check.auth is Verdict.UNKNOWN
    assert "@functools.lru_cache-decorated signed_in()" in check.auth_findings[0].message


def test_handler_made_by_a_wrapping_decorator_is_unknown(tmp_path: Path) -> None:
    check = check_source(
        tmp_path,
        """
        def logged(fn):
            async def wrapper(ctx, args):
                return await fn(ctx, args)
            return wrapper

        @query(args={})
        @logged
        async def f(ctx, args):
            return await ctx.auth.get_user_identity()
        """,
    )
    assert (check.index, check.auth) == (Verdict.UNKNOWN, Verdict.UNKNOWN)
    assert "wrapper is not a top-level function" in check.note
    assert not check.passes


def test_calling_another_registered_function_follows_its_body(tmp_path: Path) -> None:
    check = check_source(
        tmp_path,
        """
        @internal_query(args={})
        async def who(ctx, args):
            return await ctx.auth.get_user_identity()

        @query(args={})
        async def f(ctx, args):
            return await who(ctx, {})
        """,
    )
    assert check.auth is Verdict.YES
    assert check.auth_findings[0].via == ("m.who",)


# -- the report -------------------------------------------------------------------------------


def _check(path: str, index: Verdict, auth: Verdict, internal: bool = False) -> FunctionCheck:
    return FunctionCheck(path, FunctionKind.QUERY, internal, index, auth)


def test_coverage_rounds_down_and_counts_nothing_as_na() -> None:
    report = CheckReport(
        (
            _check("a:x", Verdict.YES, Verdict.YES),
            _check("a:y", Verdict.YES, Verdict.PUBLIC),
            _check("a:z", Verdict.NO, Verdict.NO),
            _check("a:i", Verdict.NO, Verdict.NO, internal=True),
        )
    )
    assert report.totals() == "index coverage 66 % (2/3), auth coverage 66 % (2/3)"
    assert not report.ok
    assert CheckReport(()).totals() == "index coverage n/a (0/0), auth coverage n/a (0/0)"
    assert CheckReport(()).ok


def test_run_check_leaves_the_callers_imports_alone() -> None:
    path_before = list(sys.path)
    functions_before = sys.modules.get("functions")
    run_check(SAMPLES / "clean")
    assert sys.path == path_before
    assert sys.modules.get("functions") is functions_before


def test_mutual_recursion_does_not_hide_a_scan_from_a_later_caller(tmp_path: Path) -> None:
    source = """
        async def a(db, n):
            if n:
                await b(db, n - 1)
            return await db.query("t").collect()

        async def b(db, n):
            return await a(db, n)

        @query(args={})
        async def f(ctx, args):
            await ctx.auth.get_user_identity()
            return await a(ctx.db, 1)

        @query(args={})
        async def g(ctx, args):
            await ctx.auth.get_user_identity()
            return await b(ctx.db, 1)
        """
    report = check_project(tmp_path, source)  # f first: b is summarised while a is running
    assert [row(report, p).index for p in ("m:f", "m:g")] == [Verdict.NO, Verdict.NO]
    assert row(report, "m:g").index_findings[0].via == ("m.b", "m.a")


def test_action_handing_ctx_away_has_no_index_to_lose(tmp_path: Path) -> None:
    report = check_project(
        tmp_path,
        """
        import asyncio
        import functools

        async def run_g(ctx):
            return await ctx.run_query("m:g")

        @action(args={})
        async def f(ctx, args):
            return await functools.partial(run_g, ctx)()

        @query(args={})
        async def g(ctx, args):
            await ctx.auth.get_user_identity()
            return await asyncio.gather(*map(ctx.db.get, ["a", "b"]))
        """,
    )
    action_row, query_row = row(report, "m:f"), row(report, "m:g")
    assert (action_row.index, action_row.auth) == (Verdict.NA, Verdict.UNKNOWN)
    assert (query_row.index, query_row.auth) == (Verdict.YES, Verdict.YES)  # get as a callback


def test_a_search_index_is_an_index(tmp_path: Path) -> None:
    check = check_source(
        tmp_path,
        """
        @query(args={"text": v.string()})
        async def f(ctx, args):
            await ctx.auth.get_user_identity()
            found = ctx.db.query("t").with_search_index(
                "search_body", lambda q: q.search("body", args["text"])
            )
            return await found.filter(lambda q: q.eq(q.field("x"), 1)).take(10)
        """,
    )
    assert check.index is Verdict.YES and check.indexed_reads == 1
