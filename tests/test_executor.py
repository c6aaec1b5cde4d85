from __future__ import annotations

from pathlib import Path

import pytest

from reactive import api, internal
from reactive.database import Database
from reactive.executor import Executor
from reactive.file_storage import LocalBlobStore, open_file_storage
from reactive.functions import FunctionKind, load_project

CHAT = Path(__file__).parent / "projects" / "chat"
Q, M, A = FunctionKind.QUERY, FunctionKind.MUTATION, FunctionKind.ACTION


@pytest.fixture
async def executor(tmp_path):
    project = load_project(CHAT)
    db = await Database.open(f"sqlite:///{tmp_path}/x.db", schema=project.schema, prune=False)
    try:
        storage = await open_file_storage(db, LocalBlobStore(tmp_path / "files"))
        yield Executor(db, project.registry, storage=storage, dev=False)
    finally:
        await db.close()


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
