from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reactive import api, internal, knobs
from reactive import executor as executor_module
from reactive.database import Database
from reactive.errors import LimitError
from reactive.executor import Executor
from reactive.file_storage import LocalBlobStore, open_file_storage
from reactive.functions import FunctionKind, load_project

CHAT = Path(__file__).parent / "projects" / "chat"
Q, M, A = FunctionKind.QUERY, FunctionKind.MUTATION, FunctionKind.ACTION


@contextlib.asynccontextmanager
async def project_executor(root: Path, tmp_path: Path) -> AsyncIterator[Executor]:
    """A production Executor of the project at `root`, on a fresh SQLite database."""
    project = load_project(root)
    db = await Database.open(f"sqlite:///{tmp_path}/x.db", schema=project.schema, prune=False)
    try:
        storage = await open_file_storage(db, LocalBlobStore(tmp_path / "files"))
        yield Executor(db, project.registry, storage=storage, dev=False)
    finally:
        await db.close()


@pytest.fixture
async def executor(tmp_path):
    async with project_executor(CHAT, tmp_path) as chat:
        yield chat


def test_references_build_paths():
    assert api.messages.list.path == "messages:list"
    assert (
        internal.actions.stripe.createCheckoutSession.path == "actions/stripe:createCheckoutSession"
    )
    with pytest.raises(ValueError):
        _ = api.messages.path


async def test_mutation_then_query(executor):
    sent = await executor.run(M, "messages:send", {"channel": "a", "body": "hi"}, None)
    assert sent.ok and sent.ts and sent.log_lines == ["[WARN] sending to a"]
    listed = await executor.run(Q, "messages:list", {"channel": "a"}, None)
    assert [d["body"] for d in listed.value] == ["hi"] and listed.token is not None
    assert listed.log_lines == ["[LOG] listing a"]


async def test_wrong_kind_is_refused(executor):
    outcome = await executor.run(Q, "messages:send", {"channel": "a", "body": "x"}, None)
    assert not outcome.ok and "is a mutation, not a query" in outcome.error.message


async def test_argument_errors_name_the_argument(executor):
    outcome = await executor.run(M, "messages:send", {"channel": "a", "body": 1.0}, None)
    assert not outcome.ok and "body" in outcome.error.message
    outcome = await executor.run(M, "messages:send", {"channel": "a", "body": "x", "z": 1.0}, None)
    assert "'z'" in outcome.error.message
    outcome = await executor.run(M, "messages:send", ["not", "an", "object"], None)
    assert "must be an object" in outcome.error.message


async def test_app_error_data_is_kept_and_other_errors_are_redacted(executor):
    outcome = await executor.run(M, "messages:send", {"channel": "a", "body": " "}, None)
    assert outcome.error.data == {"code": "EMPTY_BODY"}
    assert outcome.error.message == 'Uncaught ConvexError: {"code":"EMPTY_BODY"}'
    outcome = await executor.run(M, "messages:crash", {}, None)
    assert not outcome.error.has_data
    assert "secret internals" not in outcome.error.message
    assert "Server Error" in outcome.error.message


async def test_dev_mode_shows_the_exception(executor):
    executor.dev = True
    outcome = await executor.run(M, "messages:crash", {}, None)
    assert "RuntimeError: secret internals" in outcome.error.message
    assert "messages.py" in outcome.error.message  # the user's frame...
    assert "executor.py" not in outcome.error.message  # ...not the runtime's


async def test_failed_query_still_has_a_read_set(executor):
    outcome = await executor.run(Q, "messages:first_or_fail", {"channel": "none"}, None)
    assert outcome.error.data["code"] == "EMPTY" and outcome.token is not None
    assert outcome.token.read_set.intervals("messages.by_channel")


async def test_actions_call_internal_functions(executor):
    outcome = await executor.run(A, "messages:send_via_action", {"channel": "c", "body": "x"}, None)
    assert outcome.ok and outcome.value == 1.0
    outcome = await executor.run(A, "messages:fail_action", {}, None)
    assert outcome.error.data == "action says no"


async def test_internal_functions_are_hidden_from_clients(executor):
    outcome = await executor.run(M, "messages:send_internal", {"channel": "a", "body": "x"}, None)
    assert "Could not find public function" in outcome.error.message


async def test_return_validator_is_enforced(executor, monkeypatch):
    from reactive.functions import FunctionDef

    path, fn = executor.registry.lookup("messages:send", allow_internal=False)

    async def returns_number(ctx, args):
        return 1.0

    executor.registry.add(path, FunctionDef(fn.kind, returns_number, returns=fn.returns))
    outcome = await executor.run(M, "messages:send", {"channel": "a", "body": "x"}, None)
    assert not outcome.ok and "v.id" in outcome.error.message


# -- time limits: Convex's 1 s for queries and mutations, 10 min for actions ----------------

LIMITS = Path(__file__).parent / "projects" / "limits"


@pytest.fixture
async def limits(tmp_path):
    async with project_executor(LIMITS, tmp_path) as limited:
        yield limited


def test_time_limits_default_to_convexs():
    assert knobs.QUERY_MUTATION_TIMEOUT_S == 1.0 and knobs.ACTION_TIMEOUT_S == 600.0
    assert (executor_module._duration(1.0), executor_module._duration(600.0)) == ("1s", "10 min")


async def test_a_query_over_its_time_limit_fails_naming_it(limits, monkeypatch):
    monkeypatch.setattr(knobs, "QUERY_MUTATION_TIMEOUT_S", 0.2)
    assert (await limits.run(Q, "items:slow_query", {"seconds": 0.01}, None)).value == "done"
    outcome = await limits.run(Q, "items:slow_query", {"seconds": 5.0}, None)
    assert outcome.error is not None
    assert "Function execution timed out (maximum duration: 0.2s)" in outcome.error.message
    assert "FunctionTimedOut" in outcome.error.message and "action" in outcome.error.message


async def test_a_mutation_over_its_time_limit_commits_nothing(limits, monkeypatch):
    monkeypatch.setattr(knobs, "QUERY_MUTATION_TIMEOUT_S", 0.2)
    started = time.monotonic()
    outcome = await limits.run(M, "items:slow_mutation", {"group": "g", "seconds": 5.0}, None)
    assert time.monotonic() - started < 2  # cut short, not waited out
    assert outcome.error is not None and "maximum duration: 0.2s" in outcome.error.message
    assert (await limits.run(Q, "items:count", {"group": "g"}, None)).value == 0.0


async def test_an_action_over_its_time_limit_fails_naming_it(limits, monkeypatch):
    monkeypatch.setattr(knobs, "ACTION_TIMEOUT_S", 0.2)
    monkeypatch.setattr(knobs, "QUERY_MUTATION_TIMEOUT_S", 0.01)  # actions have their own
    assert (await limits.run(A, "items:slow_action", {"seconds": 0.05}, None)).value == "done"
    outcome = await limits.run(A, "items:slow_action", {"seconds": 5.0}, None)
    assert outcome.error is not None and "maximum duration: 0.2s" in outcome.error.message


class _AlwaysWaiting:
    """A transaction that has spent all its time waiting for storage."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def storage_seconds(self) -> float:
        return time.monotonic() - self.started


async def test_time_spent_waiting_for_storage_is_not_counted():
    tx: Any = _AlwaysWaiting()
    limit = executor_module._TX_TIME
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(knobs, "QUERY_MUTATION_TIMEOUT_S", 0.05)
        assert await executor_module._within_time_limit(asyncio.sleep(0.3, "ok"), limit, tx)
        with pytest.raises(LimitError, match=r"maximum duration: 0\.05s"):
            await executor_module._within_time_limit(asyncio.sleep(0.3), limit)


async def test_a_handlers_own_timeout_error_is_its_own():
    async def handler() -> None:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(1)

    with pytest.raises(TimeoutError):
        await executor_module._within_time_limit(handler(), executor_module._TX_TIME)


async def test_a_handler_that_swallows_the_cancellation_still_times_out():
    async def stubborn() -> str:
        with contextlib.suppress(asyncio.CancelledError):  # carries on as if nothing happened
            await asyncio.sleep(1)
        return "finished anyway"

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(knobs, "QUERY_MUTATION_TIMEOUT_S", 0.05)
        with pytest.raises(LimitError, match=r"maximum duration: 0\.05s"):
            await executor_module._within_time_limit(stubborn(), executor_module._TX_TIME)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # nothing left to hit a later await
    await asyncio.sleep(0)


async def test_nested_limits_each_name_their_own():
    """An action (long limit) calling a mutation (short limit) in the same task: the inner
    limit fails the inner call only; the outer one, when it expires, fails the outer."""

    async def inner_over_its_limit() -> None:
        await executor_module._within_time_limit(asyncio.sleep(1), executor_module._TX_TIME)

    async def outer_catching_the_inner_failure() -> str:
        with pytest.raises(LimitError, match=r"maximum duration: 0\.05s"):
            await inner_over_its_limit()
        return "outer went on"

    async def outer_running_past_its_own_limit() -> None:
        await executor_module._within_time_limit(asyncio.sleep(1), executor_module._TX_TIME)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(knobs, "QUERY_MUTATION_TIMEOUT_S", 0.05)
        patch.setattr(knobs, "ACTION_TIMEOUT_S", 0.3)
        action = executor_module._ACTION_TIME
        outer = outer_catching_the_inner_failure()
        assert await executor_module._within_time_limit(outer, action) == "outer went on"
        patch.setattr(knobs, "QUERY_MUTATION_TIMEOUT_S", 5.0)
        with pytest.raises(LimitError, match=r"maximum duration: 0\.3s"):
            await executor_module._within_time_limit(outer_running_past_its_own_limit(), action)
