"""What function code is handed: ctx.db reads and writes, ctx.db.system for system tables."""

from __future__ import annotations

import pytest

from reactive.context import DatabaseReader, DatabaseWriter
from reactive.errors import InvalidIdError, NotFoundError
from reactive.file_storage import LocalBlobStore, open_file_storage


async def test_system_tables_are_read_through_ctx_db_system(db, tmp_path):
    storage = await open_file_storage(db, LocalBlobStore(tmp_path / "files"))
    storage_id = await storage.store(b"hello", "text/plain")
    reader = DatabaseReader(db.begin(read_only=True))
    rows = await reader.system.query("_storage").collect()
    assert [row["_id"] for row in rows] == [storage_id]
    assert (await reader.system.get(storage_id))["size"] == 5


async def test_ctx_db_system_refuses_user_tables(db):
    reader = DatabaseReader(db.begin(read_only=True))
    with pytest.raises(NotFoundError, match="not a system table"):
        reader.system.query("messages")


async def test_a_mutation_reads_its_own_writes(db):
    async def body(tx):
        writer = DatabaseWriter(tx)
        doc_id = await writer.insert("messages", {"channel": "c", "body": "b"})
        return (await writer.get(doc_id))["body"]

    assert (await db.run_mutation(body)).value == "b"


async def test_get_with_a_table_reads_an_id_of_that_table_and_refuses_another(db):
    async def body(tx):
        writer = DatabaseWriter(tx)
        message = await writer.insert("messages", {"channel": "c", "body": "b"})
        account = await writer.insert("accounts", {"name": "n", "balance": 1.0})
        return message, account

    message, account = (await db.run_mutation(body)).value
    reader = DatabaseReader(db.begin(read_only=True))
    assert (await reader.get("messages", message))["body"] == "b"
    assert (await reader.get(message))["body"] == "b"  # the one-argument form stays
    with pytest.raises(InvalidIdError, match=r"is an id of table 'accounts', not of 'messages'"):
        await reader.get("messages", account)
    with pytest.raises(InvalidIdError, match=r"not of 'nosuchtable'"):
        await reader.get("nosuchtable", message)
