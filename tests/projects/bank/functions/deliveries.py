"""Deliveries: one insert per unique tag, so a test can count how often each was applied."""

from typing import Any

from reactive import Id, MutationCtx, QueryCtx, mutation, query, v


@mutation(args={"tag": v.string()}, returns=v.id("deliveries"))
async def deliver(ctx: MutationCtx, args: dict[str, Any]) -> Id:
    return await ctx.db.insert("deliveries", {"tag": args["tag"]})


async def _tags(ctx: QueryCtx, prefix: str) -> list[str]:
    found = await (
        ctx.db.query("deliveries")
        .with_index("by_tag", lambda q: q.gte("tag", prefix).lt("tag", prefix + "\uffff"))
        .collect()
    )
    return [doc["tag"] for doc in found]


@query(args={"prefix": v.string()})
async def tags(ctx: QueryCtx, args: dict[str, Any]) -> list[str]:
    """Every stored tag starting with `prefix`, duplicates included, in tag order."""
    return await _tags(ctx, args["prefix"])


@query(args={"prefix": v.string()})
async def count(ctx: QueryCtx, args: dict[str, Any]) -> float:
    return float(len(await _tags(ctx, args["prefix"])))
