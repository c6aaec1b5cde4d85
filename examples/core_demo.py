"""A live demo of the core on embedded SQLite: a board query re-runs only when its tasks change.

Run with `./scripts/run` (or `python -m examples.core_demo [--db URL]`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Any

from reactive.database import Database
from reactive.persistence import DEFAULT_DATABASE_URL
from reactive.types import Value
from schema import schema

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("demo")


def now_ms() -> float:
    return time.time() * 1000


async def board(tx: Any, project_id: str) -> dict[str, list[str]]:
    """Tasks of one project grouped by status: reads one index range per status."""
    columns = {}
    for status in ("todo", "in_progress", "done"):
        tasks = await (
            tx.query("tasks")
            .with_index(
                "by_projectId_status",
                lambda q, s=status: q.eq("projectId", project_id).eq("status", s),
            )
            .collect()
        )
        columns[status] = [t["title"] for t in sorted(tasks, key=lambda t: t["order"])]
    return columns


class LiveBoard:
    """Keeps the board query subscribed: re-runs it whenever a commit touches its ranges."""

    def __init__(self, db: Database, project_id: str) -> None:
        self.db, self.project_id = db, project_id
        self.dirty = asyncio.Event()
        self.reruns = 0

    async def refresh(self) -> None:
        result = await self.db.run_query(lambda tx: board(tx, self.project_id))
        self.db.subscribe(result.token, lambda sub, ts: self.dirty.set())
        log.info("board at ts %d (run #%d): %s", result.ts, self.reruns, result.value)
        self.reruns += 1

    async def follow(self) -> None:
        await self.refresh()
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            await self.refresh()


async def seed(db: Database) -> tuple[str, str]:
    async def run(tx: Any) -> tuple[str, str]:
        user = await tx.insert(
            "users",
            {
                "clerkId": f"demo-{now_ms()}",
                "email": "demo@example.com",
                "plan": "free",
                "credits": 100.0,
                "createdAt": now_ms(),
                "updatedAt": now_ms(),
            },
        )
        project = await tx.insert(
            "projects",
            {
                "userId": user,
                "name": "Demo",
                "status": "active",
                "createdAt": now_ms(),
                "updatedAt": now_ms(),
                "settings": {"isPublic": False, "allowComments": True},
            },
        )
        return user, project

    return (await db.run_mutation(run)).value


async def add_task(db: Database, project_id: str, title: str, order: float) -> str:
    doc: dict[str, Value] = {
        "projectId": project_id,
        "title": title,
        "status": "todo",
        "priority": "medium",
        "order": order,
        "createdAt": now_ms(),
        "updatedAt": now_ms(),
    }
    return (await db.run_mutation(lambda tx: tx.insert("tasks", doc))).value


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args()
    db = await Database.open(args.db, schema=schema)
    try:
        _, project = await seed(db)
        _, other_project = await seed(db)
        live = LiveBoard(db, project)
        follower = asyncio.create_task(live.follow())
        await asyncio.sleep(0.1)
        first = await add_task(db, project, "Write the schema", 1.0)
        await asyncio.sleep(0.1)
        await add_task(db, other_project, "Not on this board", 1.0)  # no re-run
        await asyncio.sleep(0.1)
        await add_task(db, project, "Ship it", 2.0)
        await asyncio.sleep(0.1)
        await db.run_mutation(lambda tx: tx.patch(first, {"status": "done"}))
        await asyncio.sleep(0.1)
        follower.cancel()
        log.info("%d runs for 3 relevant commits and 1 unrelated one", live.reruns)
    finally:
        await db.close()


if __name__ == "__main__":
    asyncio.run(main())
