"""Functions that go up to Convex's limits, and over them when asked: each limit's error must
name it and leave the database as it was."""

import asyncio
from typing import Any

from reactive import UNDEFINED, ActionCtx, MutationCtx, QueryCtx, action, mutation, query, v


@mutation(args={"group": v.string(), "count": v.float64(), "size": v.optional(v.float64())})
async def add(ctx: MutationCtx, args: dict[str, Any]) -> float:
    """Insert `count` items of `size` characters; refused whole if that is over a limit."""
    body = "x" * int(args.get("size", 1))
    for _ in range(int(args["count"])):
        await ctx.db.insert("items", {"group": args["group"], "body": body})
    return args["count"]  # type: ignore[no-any-return]


@mutation(args={"group": v.string(), "length": v.float64()})
async def add_list(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Insert one item, then return an array of `length` elements."""
    await ctx.db.insert("items", {"group": args["group"], "body": "list"})
    return [0.0] * int(args["length"])  # type: ignore[return-value]


@query(args={"group": v.string()})
async def count(ctx: QueryCtx, args: dict[str, Any]) -> float:
    group = args["group"]
    rows = ctx.db.query("items").with_index("by_group", lambda q: q.eq("group", group))
    return float(len(await rows.collect()))


@query(args={"group": v.string()})
async def read_all(ctx: QueryCtx, args: dict[str, Any]) -> float:
    """Read the whole group with a filter (every document scanned, none returned)."""
    group = args["group"]
    found = await ctx.db.query("items").filter(lambda q: q.eq(q.field("group"), group)).collect()
    return float(len(found))


@mutation(args={"group": v.string()})
async def touch_all(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Write one item, then read the whole group: a read limit refuses the write too."""
    await ctx.db.insert("items", {"group": "touched", "body": "t"})
    async for doc in ctx.db.query("items").filter(lambda q: q.eq(q.field("group"), args["group"])):
        await ctx.db.patch(doc["_id"], {"tag": "seen"})


@mutation(args={"group": v.string(), "gets": v.float64()})
async def get_many(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Write one item, then db.get it `gets` times."""
    doc_id = await ctx.db.insert("items", {"group": args["group"], "body": "g"})
    for _ in range(int(args["gets"])):
        await ctx.db.get(doc_id)


@mutation(args={"group": v.string(), "seconds": v.float64()})
async def slow_mutation(ctx: MutationCtx, args: dict[str, Any]) -> None:
    await ctx.db.insert("items", {"group": args["group"], "body": "slow"})
    await asyncio.sleep(args["seconds"])


@query(args={"seconds": v.float64()})
async def slow_query(ctx: QueryCtx, args: dict[str, Any]) -> str:
    await asyncio.sleep(args["seconds"])
    return "done"


@action(args={"seconds": v.float64()})
async def slow_action(ctx: ActionCtx, args: dict[str, Any]) -> str:
    await asyncio.sleep(args["seconds"])
    return "done"


@query(args={"group": v.string(), "paginationOpts": v.any()})
async def page(ctx: QueryCtx, args: dict[str, Any]) -> Any:
    group = args["group"]
    rows = ctx.db.query("items").with_index("by_group", lambda q: q.eq("group", group))
    return await rows.paginate(args["paginationOpts"])


@mutation(args={"group": v.string()})
async def paginate_twice(ctx: MutationCtx, args: dict[str, Any]) -> None:
    await ctx.db.insert("items", {"group": args["group"], "body": "p"})
    for _ in range(2):
        await ctx.db.query("items").paginate({"numItems": 1.0, "cursor": None})


@mutation(args={"body": v.string()})
async def add_other(ctx: MutationCtx, args: dict[str, Any]) -> Any:
    return await ctx.db.insert("others", {"note": args["body"]})


@query(args={"table": v.string(), "id": v.string()})
async def get_from(ctx: QueryCtx, args: dict[str, Any]) -> Any:
    return await ctx.db.get(args["table"], args["id"])


@mutation(args={"group": v.string(), "tag": v.optional(v.string())})
async def add_tagged(ctx: MutationCtx, args: dict[str, Any]) -> Any:
    fields = {"group": args["group"], "body": "t"}
    if "tag" in args:
        fields["tag"] = args["tag"]
    return await ctx.db.insert("items", fields)


@query(args={"group": v.string()})
async def untagged(ctx: QueryCtx, args: dict[str, Any]) -> float:
    """How many items of the group have no tag at all."""
    group = args["group"]
    rows = ctx.db.query("items").with_index(
        "by_tag", lambda q: q.eq("tag", UNDEFINED).eq("group", group)
    )
    return float(len(await rows.collect()))
