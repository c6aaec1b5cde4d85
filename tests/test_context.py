"""What function code is handed: ctx.db reads and writes, ctx.db.system for system tables."""

from __future__ import annotations

import pytest

from reactive.context import DatabaseReader, DatabaseWriter
from reactive.errors import InvalidIdError, NotFoundError, ValidationError
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


# -- system tables: read only through ctx.db.system, never written by user code -----------------


@pytest.fixture
async def storage_id(db, tmp_path):
    storage = await open_file_storage(db, LocalBlobStore(tmp_path / "files"))
    return await storage.store(b"hello", "text/plain")


async def test_ctx_db_refuses_system_tables_as_convex_does(db, storage_id):
    reader = DatabaseReader(db.begin(read_only=True))
    with pytest.raises(ValidationError, match=r"only be accessed with db\.system") as refused:
        await reader.get(storage_id)
    assert refused.value.short_msg == "SystemTableError"
    with pytest.raises(ValidationError, match=r"only be accessed with db\.system"):
        reader.query("_storage")


async def test_ctx_db_system_get_refuses_user_documents(db):
    message = (
        await db.run_mutation(lambda tx: tx.insert("messages", {"channel": "c", "body": "b"}))
    ).value
    reader = DatabaseReader(db.begin(read_only=True))
    with pytest.raises(ValidationError, match=r"User tables cannot be accessed with db\.system"):
        await reader.system.get(message)
    assert (await reader.get(message))["body"] == "b"


@pytest.mark.parametrize("table", ["_storage", "_deployments", "_scheduled_functions", "_mine"])
async def test_user_code_cannot_insert_into_any_system_table(db, storage_id, table):
    with pytest.raises(ValidationError, match="system table") as refused:
        await db.run_mutation(lambda tx: DatabaseWriter(tx).insert(table, {"size": 1.0}))
    assert refused.value.short_msg == "SystemTableWrite"
    rows = (await db.run_query(lambda tx: tx.query("_storage").collect())).value
    assert [row["_id"] for row in rows] == [storage_id]


@pytest.mark.parametrize(
    "write",
    [
        lambda ctx_db, doc_id: ctx_db.patch(doc_id, {"size": 0.0}),
        lambda ctx_db, doc_id: ctx_db.replace(doc_id, {"size": 0.0}),
        lambda ctx_db, doc_id: ctx_db.delete(doc_id),
    ],
    ids=["patch", "replace", "delete"],
)
async def test_user_code_cannot_change_a_system_document(db, storage_id, write):
    with pytest.raises(ValidationError, match="system table") as refused:
        await db.run_mutation(lambda tx: write(DatabaseWriter(tx), storage_id))
    assert refused.value.short_msg == "SystemTableWrite"
    row = (await db.run_query(lambda tx: tx.get(storage_id))).value
    assert row["size"] == 5.0
