"""Bank accounts for the contended-transfer throughput scenario."""

from functions.counters import bump

from reactive import mutation, v


@mutation(args={"count": v.float64()})
async def create(ctx, args):
    return [
        await ctx.db.insert("accounts", {"name": f"a{i}", "balance": 1000.0})
        for i in range(int(args["count"]))
    ]


@mutation(args={"source": v.id("accounts"), "target": v.id("accounts")})
async def transfer(ctx, args):
    """Move 1 unit; every attempt is counted, so attempts - commits = OCC re-runs."""
    bump("accounts:transfer")
    source, target = await ctx.db.get(args["source"]), await ctx.db.get(args["target"])
    await ctx.db.patch(args["source"], {"balance": source["balance"] - 1})
    await ctx.db.patch(args["target"], {"balance": target["balance"] + 1})
