"""The `reactive` command line: inspect and maintain a database (more commands come with the
server: dev, serve, codegen, import/export, logs, run, check, deploy)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from reactive.database import Database
from reactive.persistence import DEFAULT_DATABASE_URL

__all__ = ["main"]


def database_url(arg: str | None) -> str:
    return arg or os.environ.get("REACTIVE_DATABASE_URL") or DEFAULT_DATABASE_URL


async def info(url: str) -> int:
    """Print every table with its indexes, their state and the live document count."""
    db = await Database.open(url, prune=False)
    try:
        print(f"database {url.split('?')[0]}  latest ts {db.latest_ts}")
        for table in db.catalog.tables():
            count = len((await db.run_query(lambda tx, t=table: tx.query(t).collect())).value)
            print(f"  {table}: {count} documents")
            for index in db.catalog.indexes(table):
                fields = ", ".join(index.fields)
                print(f"    {index.name} [{fields}] {index.state.value}")
    finally:
        await db.close()
    return 0


async def prune(url: str) -> int:
    """Remove versions older than the retention window (REACTIVE_RETENTION_S)."""
    db = await Database.open(url, prune=False)
    try:
        removed = await db.prune()
        print(f"pruned {removed} old rows")
    finally:
        await db.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reactive", description="reactive backend tools")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("info", info.__doc__), ("prune", prune.__doc__)):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--db", help=f"database URL (default $REACTIVE_DATABASE_URL or {DEFAULT_DATABASE_URL})"
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = {"info": info, "prune": prune}[args.command]
    try:
        return asyncio.run(command(database_url(args.db)))
    except (OSError, ValueError) as exc:
        print(f"reactive {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
