"""Chat functions the benchmark scenarios call; `list` is the subscribed query."""

from functions.counters import bump

from reactive import mutation, pagination_opts_validator, query, v


def _channel(ctx, channel):
    return ctx.db.query("messages").with_index("by_channel", lambda q: q.eq("channel", channel))


@query(args={"channel": v.string()})
async def list(ctx, args):
    """The latest 10 messages of a channel; each execution is counted (re-runs per commit)."""
    bump("messages:list")
    return await _channel(ctx, args["channel"]).order("desc").take(10)


# `salt` is ignored: distinct values defeat the server's sharing of identical query runs, so
# the latency scenario measures executions, not cache hits.
@query(args={"channel": v.string(), "n": v.float64(), "salt": v.optional(v.float64())})
async def take(ctx, args):
    """An indexed range read of the first `n` messages of a channel."""
    return await _channel(ctx, args["channel"]).take(int(args["n"]))


# `salt`: see `take` below.
@query(args={"id": v.id("messages"), "salt": v.optional(v.float64())})
async def get(ctx, args):
    return await ctx.db.get(args["id"])


@query(
    args={
        "channel": v.string(),
        "paginationOpts": pagination_opts_validator,
        "salt": v.optional(v.float64()),
    }
)
async def page(ctx, args):
    return await _channel(ctx, args["channel"]).paginate(args["paginationOpts"])


@mutation(args={"channel": v.string(), "body": v.string()}, returns=v.id("messages"))
async def send(ctx, args):
    return await ctx.db.insert("messages", {"channel": args["channel"], "body": args["body"]})


@mutation(args={"channel": v.string(), "count": v.float64()})
async def fill(ctx, args):
    """Insert `count` messages into a channel in one transaction (setup for query latency)."""
    for i in range(int(args["count"])):
        await ctx.db.insert("messages", {"channel": args["channel"], "body": f"m{i}"})
