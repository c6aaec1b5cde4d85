from __future__ import annotations

import pytest

from reactive.cli import info, main
from reactive.database import Database
from tests.schemas import TEST_SCHEMA


async def test_info_lists_tables_indexes_and_counts(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/cli.db"
    db = await Database.open(url, schema=TEST_SCHEMA, prune=False)
    await db.run_mutation(lambda tx: tx.insert("messages", {"channel": "a", "body": "x"}))
    await db.close()
    assert await info(url) == 0
    out = capsys.readouterr().out
    assert "messages: 1 documents" in out and "by_channel [channel] ready" in out


def test_bad_database_url_is_a_clear_error(capsys):
    assert main(["info", "--db", "mysql://nope"]) == 1
    assert "unsupported database URL" in capsys.readouterr().err


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit):
        main(["frobnicate"])
