"""The functions of the author-API example in ARCHITECTURE.md, exactly as it shows (untyped)."""

from reactive import AppError, mutation, query, v


@query(args={"channel": v.string()})
async def list(ctx, args):
    return await (
        ctx.db.query("messages")
        .with_index("by_channel", lambda q: q.eq("channel", args["channel"]))
        .order("desc")
        .take(10)
    )


@mutation(args={"channel": v.string(), "body": v.string()}, returns=v.id("messages"))
async def send(ctx, args):
    if not args["body"].strip():
        raise AppError({"code": "EMPTY_BODY"})
    return await ctx.db.insert("messages", {"channel": args["channel"], "body": args["body"]})
