"""An ambiguous commit never loses an update: PostgreSQL connections cut right after COMMIT
(through tests/tcp_proxy.py) leave the server not knowing whether its commit landed. It must
find out before it answers or commits anything else, and answer truthfully."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reactive.database import Database
from reactive.transaction import Transaction
from tests.conftest import POSTGRES_URL, connect_postgres_or_skip, with_schema
from tests.live_server import LiveServer
from tests.schemas import TEST_SCHEMA
from tests.tcp_proxy import CuttingProxy

pytestmark = pytest.mark.postgres

COUNTER = Path(__file__).resolve().parent.parent / "projects" / "counter"


@pytest.fixture
async def schema() -> Iterator[str]:  # type: ignore[misc]
    conn = await connect_postgres_or_skip()
    name = f"t_{secrets.token_hex(8)}"
    try:
        yield name
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await conn.close()


@pytest.fixture
def proxy() -> Iterator[CuttingProxy]:
    with CuttingProxy() as running:
        yield running


async def test_a_commit_cut_off_after_COMMIT_is_acknowledged_and_published(schema, proxy):
    through_proxy = await Database.open(proxy.url(schema), schema=TEST_SCHEMA, prune=False)
    direct = await Database.open(with_schema(POSTGRES_URL, schema), prune=False)
    try:
        seen = asyncio.Event()
        result = await direct.run_query(lambda tx: tx.query("messages").collect())
        direct.subscribe(result.token, lambda _sub, _ts: seen.set())
        proxy.cut_next_commits(1)
        written = await through_proxy.run_mutation(
            lambda tx: tx.insert("messages", {"channel": "c", "body": "landed"})
        )
        assert proxy.cut == 1
        assert written.retries == 0  # it landed: acknowledged as it was, not run again
        assert through_proxy.latest_ts >= written.ts  # and published here
        await asyncio.wait_for(seen.wait(), 5)
        docs = (await direct.run_query(lambda tx: tx.query("messages").collect())).value
        assert [d["body"] for d in docs] == ["landed"]
    finally:
        await direct.close()
        await through_proxy.close()


async def test_the_next_transaction_reads_a_write_whose_commit_was_cut_off(schema, proxy):
    db = await Database.open(proxy.url(schema), schema=TEST_SCHEMA, prune=False)
    try:
        account = (
            await db.run_mutation(lambda tx: tx.insert("accounts", {"name": "a", "balance": 0.0}))
        ).value

        async def add_one(tx):  # type: ignore[no-untyped-def]
            doc = await tx.get(account)
            await tx.patch(account, {"balance": doc["balance"] + 1})

        for round_ in range(10):
            proxy.cut_next_commits(1 if round_ % 2 == 0 else 0)
            await db.run_mutation(add_one)
        balance = (await db.run_query(lambda tx: tx.get(account))).value["balance"]
        assert proxy.cut == 5 and balance == 10.0
    finally:
        await db.close()


def test_acknowledged_and_stored_writes_agree_with_commits_cut_at_random(schema, proxy, tmp_path):
    """A real server process, its database connections through the proxy; a counter and one
    row per increment. Every acknowledged increment is stored once, and nothing else is."""
    env = {"REACTIVE_STORAGE_DIR": str(tmp_path / "files")}
    acknowledged = failed = 0
    server = LiveServer(COUNTER, proxy.url(schema), env=env, dev=False)
    with server, httpx.Client(base_url=server.url, timeout=60) as client:
        for call in range(120):
            if call % 6 == 3:
                proxy.cut_next_commits(1)
            response = client.post(
                "/api/mutation", json={"path": "counter:bump", "args": {"name": "n"}}
            )
            if response.json().get("status") == "success":
                acknowledged += 1
            else:
                failed += 1
    stored = asyncio.run(_stored_counter(schema))
    print(f"cut {proxy.cut} connections; acknowledged {acknowledged}, failed {failed}; {stored}")
    assert proxy.cut >= 15
    assert stored == {"value": acknowledged, "rows": acknowledged}
    assert failed == 0  # every cut commit was either found to have landed or run again


async def _stored_counter(schema: str) -> dict[str, int]:
    """The counter and its rows as stored, read straight from the database."""
    db = await Database.open(with_schema(POSTGRES_URL, schema), prune=False)
    try:

        async def read(tx: Transaction) -> dict[str, int]:
            counters = await tx.query("counters").collect()
            rows = await tx.query("rows").collect()
            return {"value": int(counters[0]["value"]) if counters else 0, "rows": len(rows)}

        return (await db.run_query(read)).value
    finally:
        await db.close()
