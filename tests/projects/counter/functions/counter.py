"""A counter and one row per increment: after any failure the two must still agree."""

from typing import Any

from reactive import MutationCtx, QueryCtx, mutation, query, v


@mutation(args={"name": v.string()})
async def bump(ctx: MutationCtx, args: dict[str, Any]) -> float:
    name = args["name"]
    found = await (
        ctx.db.query("counters").with_index("by_name", lambda q: q.eq("name", name)).first()
    )
    if found is None:
        await ctx.db.insert("counters", {"name": name, "value": 1.0})
        value = 1.0
    else:
        value = found["value"] + 1
        await ctx.db.patch(found["_id"], {"value": value})
    await ctx.db.insert("rows", {"counter": name})
    return value


@query(args={"name": v.string()})
async def state(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, float]:
    name = args["name"]
    found = await (
        ctx.db.query("counters").with_index("by_name", lambda q: q.eq("name", name)).first()
    )
    rows = await (
        ctx.db.query("rows").with_index("by_counter", lambda q: q.eq("counter", name)).collect()
    )
    return {"value": 0.0 if found is None else found["value"], "rows": float(len(rows))}
