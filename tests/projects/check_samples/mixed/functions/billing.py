"""Actions: they read nothing themselves; what they run is checked on its own."""

from reactive import action, internal, internal_mutation


@action(args={})
async def checkout(ctx, args):
    identity = await ctx.auth.get_user_identity()
    if identity is None:
        raise ValueError("sign in first")
    return await ctx.run_mutation(internal.billing.record, {"kind": "checkout"})


@action(args={})
async def refreshAll(ctx, args):
    return await ctx.run_mutation(internal.billing.record, {"kind": "refresh"})


@internal_mutation(args={})
async def record(ctx, args):
    for event in await ctx.db.query("events").collect():  # check: internal scan
        await ctx.db.delete(event["_id"])
    return await ctx.db.insert("events", {"kind": args["kind"]})
