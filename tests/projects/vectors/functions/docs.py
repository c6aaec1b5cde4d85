"""Vector search from an action, and the mutation that writes the vectors it finds."""

from typing import Any

from reactive import ActionCtx, MutationCtx, action, mutation, v


@mutation(args={"kind": v.string(), "embedding": v.array(v.float64())})
async def add(ctx: MutationCtx, args: dict[str, Any]) -> str:
    return await ctx.db.insert("docs", {"kind": args["kind"], "embedding": args["embedding"]})


@action(args={"vector": v.array(v.float64()), "kind": v.optional(v.string())})
async def nearest(ctx: ActionCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    kind = args.get("kind")
    query: dict[str, Any] = {"vector": args["vector"], "limit": 3}
    if kind is not None:
        query["filter"] = lambda q: q.eq("kind", kind)
    return await ctx.vector_search("docs", "by_embedding", query)
