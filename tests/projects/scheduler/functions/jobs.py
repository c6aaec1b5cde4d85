"""Functions that schedule, and the jobs they schedule: each run of a job writes one `effects`
row named after it, so tests count runs by counting rows."""

import asyncio
from typing import Any

from reactive import (
    ActionCtx,
    AppError,
    Document,
    MutationCtx,
    QueryCtx,
    action,
    internal,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
    v,
)


@internal_mutation(args={"name": v.string()})
async def record(ctx: MutationCtx, args: dict[str, Any]) -> None:
    await ctx.db.insert("effects", {"name": args["name"]})


@internal_mutation(args={"name": v.string()})
async def record_then_fail(ctx: MutationCtx, args: dict[str, Any]) -> None:
    await ctx.db.insert("effects", {"name": args["name"]})
    raise AppError({"code": "JOB_FAILED"})


@internal_action(args={"name": v.string(), "seconds": v.float64()})
async def slow(ctx: ActionCtx, args: dict[str, Any]) -> str:
    """Records that it started, sleeps, then records that it finished."""
    await ctx.run_mutation(internal.jobs.record, {"name": args["name"]})
    await asyncio.sleep(args["seconds"])
    await ctx.run_mutation(internal.jobs.record, {"name": args["name"] + ":done"})
    return "slept"


@internal_action(args={})
async def broken(ctx: ActionCtx, args: dict[str, Any]) -> None:
    raise RuntimeError("the action broke")


@internal_query(args={})
async def a_query(ctx: QueryCtx, args: dict[str, Any]) -> None:
    return None


@mutation(args={"delay": v.any(), "ref": v.string(), "args": v.any()})
async def schedule(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """Schedule `ref` after `delay` ms (any value: tests pass bad ones)."""
    return await ctx.scheduler.run_after(args["delay"], args["ref"], args["args"])


@mutation(args={"at": v.any(), "name": v.string()})
async def schedule_at(ctx: MutationCtx, args: dict[str, Any]) -> str:
    return await ctx.scheduler.run_at(args["at"], internal.jobs.record, {"name": args["name"]})


@mutation(args={"delay": v.float64(), "name": v.string()})
async def schedule_then_fail(ctx: MutationCtx, args: dict[str, Any]) -> None:
    await ctx.scheduler.run_after(args["delay"], internal.jobs.record, {"name": args["name"]})
    raise AppError({"code": "CHANGED_MY_MIND"})


@mutation(args={"count": v.float64(), "name": v.string(), "delay": v.float64()})
async def schedule_many(ctx: MutationCtx, args: dict[str, Any]) -> list[str]:
    return [
        await ctx.scheduler.run_after(
            args["delay"], internal.jobs.record, {"name": f"{args['name']}:{i}"}
        )
        for i in range(int(args["count"]))
    ]


@mutation(args={"id": v.any()})
async def cancel(ctx: MutationCtx, args: dict[str, Any]) -> None:
    await ctx.scheduler.cancel(args["id"])


@action(args={"delay": v.float64(), "name": v.string()})
async def schedule_from_action(ctx: ActionCtx, args: dict[str, Any]) -> str:
    return await ctx.scheduler.run_after(args["delay"], "jobs:record", {"name": args["name"]})


@action(args={"id": v.string()})
async def cancel_from_action(ctx: ActionCtx, args: dict[str, Any]) -> None:
    await ctx.scheduler.cancel(args["id"])


@mutation(args={})
async def write_system_table(ctx: MutationCtx, args: dict[str, Any]) -> None:
    await ctx.db.insert("_scheduled_functions", {"name": "x"})


@query(args={"name": v.string()})
async def effects(ctx: QueryCtx, args: dict[str, Any]) -> float:
    rows = await (
        ctx.db.query("effects").with_index("by_name", lambda q: q.eq("name", args["name"]))
    ).collect()
    return float(len(rows))


@query(args={})
async def all_effects(ctx: QueryCtx, args: dict[str, Any]) -> list[str]:
    return [row["name"] for row in await ctx.db.query("effects").collect()]


@query(args={"id": v.id("_scheduled_functions")})
async def job(ctx: QueryCtx, args: dict[str, Any]) -> Document | None:
    return await ctx.db.system.get(args["id"])


@query(args={})
async def jobs(ctx: QueryCtx, args: dict[str, Any]) -> list[Document]:
    return await ctx.db.system.query("_scheduled_functions").collect()
