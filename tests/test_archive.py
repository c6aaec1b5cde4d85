"""Export and import: ZIP snapshots round-trip ids and creation times; imports are atomic."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from reactive.application import Application
from reactive.archive import ArchiveError, export_archive, import_archive, import_table
from reactive.database import Database
from reactive.tools.cli import main
from tests.schemas import TEST_SCHEMA

CHAT = Path(__file__).parent / "projects" / "chat"


async def fill(db, n=5):
    async def run(tx):
        for i in range(n):
            await tx.insert("messages", {"channel": f"c{i % 2}", "body": f"m{i}", "n": float(i)})
        await tx.insert("accounts", {"name": "a", "balance": 1.5})

    await db.run_mutation(run)


async def everything(db):
    async def run(tx):
        return {t: await tx.query(t).collect() for t in ("messages", "accounts")}

    return (await db.run_query(run)).value


@pytest.fixture
async def fresh(tmp_path):
    database = await Database.open(
        f"sqlite:///{tmp_path}/fresh.db", schema=TEST_SCHEMA, prune=False
    )
    try:
        yield database
    finally:
        await database.close()


async def test_snapshot_round_trips_ids_creation_times_and_indexes(db, fresh, tmp_path):
    await fill(db)
    path = tmp_path / "snap.zip"
    counts = await export_archive(db, None, path)
    assert counts["messages"] == 5 and counts["accounts"] == 1
    summary = await import_archive(fresh, None, path)
    assert summary.documents["messages"] == 5
    assert await everything(fresh) == await everything(db)

    async def by_channel(tx):
        return (
            await tx.query("messages")
            .with_index("by_channel", lambda q: q.eq("channel", "c1"))
            .collect()
        )

    assert [d["body"] for d in (await fresh.run_query(by_channel)).value] == ["m1", "m3"]


async def test_import_into_a_non_empty_table_needs_replace(db, fresh, tmp_path):
    await fill(db)
    path = tmp_path / "snap.zip"
    await export_archive(db, None, path)
    await fresh.run_mutation(lambda tx: tx.insert("accounts", {"name": "old", "balance": 0.0}))
    with pytest.raises(ArchiveError, match="already has documents"):
        await import_archive(fresh, None, path)
    assert (await everything(fresh))["messages"] == []
    await import_archive(fresh, None, path, replace=True)
    assert await everything(fresh) == await everything(db)


async def test_a_bad_line_rejects_the_whole_import_with_its_line_number(db, fresh, tmp_path):
    await fill(db)
    path = tmp_path / "snap.zip"
    await export_archive(db, None, path)
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.namelist():
            data = source.read(item)
            if item == "messages/documents.jsonl":
                lines = data.splitlines()
                lines[3] = re.sub(rb'"body":"[^"]*"', b'"body":3.0', lines[3])
                data = b"\n".join(lines)
            target.writestr(item, data)
    with pytest.raises(ArchiveError, match=r"messages:4: .*body"):
        await import_archive(fresh, None, broken)
    assert await everything(fresh) == {"messages": [], "accounts": []}


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a zip", "not a readable ZIP"), (None, "has no _tables")],
)
async def test_malformed_snapshots_are_refused(fresh, tmp_path, content, message):
    path = tmp_path / "bad.zip"
    if content is None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("messages/documents.jsonl", b"{}")
    else:
        path.write_bytes(content)
    with pytest.raises(ArchiveError, match=message):
        await import_archive(fresh, None, path)


async def test_import_table_from_jsonl_and_csv(fresh, tmp_path):
    jsonl = tmp_path / "messages.jsonl"
    jsonl.write_text('{"channel": "x", "body": "one"}\n\n{"channel": "x", "body": "two"}\n')
    summary = await import_table(fresh, "messages", jsonl)
    assert summary.documents == {"messages": 2}
    table = tmp_path / "accounts.csv"
    table.write_text("name,balance\nann,10\nbob,2.5\n")
    await import_table(fresh, "accounts", table)
    accounts = (await everything(fresh))["accounts"]
    assert [(a["name"], a["balance"]) for a in accounts] == [("ann", 10.0), ("bob", 2.5)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.jsonl", '{"channel": "x", "body": "ok"}\n{"channel": "x"}\n', "line 2: .*body"),
        ("m.jsonl", '{"channel": "x", "body": "ok"}\n{not json\n', "m.jsonl:2"),
        ("m.jsonl", "[1, 2]\n", "m.jsonl:1: expected a JSON object"),
        ("m.csv", "channel,body\nx,ok\ny,3\n", "line 3: .*body"),
        ("m.csv", "channel,body\nx,ok,extra\n", "more cells"),
    ],
)
async def test_bad_import_files_change_nothing(fresh, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ArchiveError, match=message):
        await import_table(fresh, "messages", path)
    assert (await everything(fresh))["messages"] == []


async def test_files_travel_with_the_snapshot(tmp_path, monkeypatch):
    source = await Application.start(CHAT, f"sqlite:///{tmp_path}/a/db.sqlite")
    try:
        outcome = await source.run_action("files:store_text", {"text": "attached"})
        storage_id = outcome.value["id"]
        await export_archive(source.db, source.storage.blobs, tmp_path / "s.zip")
    finally:
        await source.close()
    target = await Application.start(CHAT, f"sqlite:///{tmp_path}/b/db.sqlite")
    try:
        summary = await import_archive(target.db, target.storage.blobs, tmp_path / "s.zip")
        assert summary.files == 1
        found = await target.storage.read(storage_id)
        assert found is not None and found[1] == b"attached"
    finally:
        await target.close()


def test_cli_export_and_import(tmp_path, capsys):
    source = ["--dir", str(CHAT), "--db", f"sqlite:///{tmp_path}/a.db"]
    assert main(["run", "messages:send", '{"channel": "c", "body": "hi"}', *source]) == 0
    assert main(["export", "--path", str(tmp_path / "s.zip"), *source]) == 0
    target = ["--dir", str(CHAT), "--db", f"sqlite:///{tmp_path}/b.db"]
    assert main(["import", str(tmp_path / "s.zip"), *target]) == 0
    assert "imported" in capsys.readouterr().out
    assert main(["run", "messages:count", '{"channel": "c"}', *target]) == 0
    assert capsys.readouterr().out.split()[-1] == "1.0"
    assert main(["import", str(tmp_path / "missing.zip"), *target]) == 2
    (tmp_path / "bad.jsonl").write_text('{"channel": 1}\n')
    assert main(["import", str(tmp_path / "bad.jsonl"), "--table", "messages", *target]) == 1
    assert "nothing was imported" in capsys.readouterr().err
