"""Extra chat functions for the npm conformance tests (tests/test_conformance_npm.py).

`counters` sorted by name give pages whose boundaries a test can insert into and delete at.
"""

import asyncio

from reactive import mutation, pagination_opts_validator, query, v


@mutation(args={"channel": v.string(), "body": v.string(), "delay_s": v.float64()})
async def send_slowly(ctx, args):
    """Insert, then keep the mutation open for `delay_s` so a restart can land mid-flight."""
    doc_id = await ctx.db.insert("messages", {"channel": args["channel"], "body": args["body"]})
    await asyncio.sleep(args["delay_s"])
    return doc_id


@mutation(args={"name": v.string()}, returns=v.id("counters"))
async def add_counter(ctx, args):
    return await ctx.db.insert("counters", {"name": args["name"], "value": 0.0})


@mutation(args={"id": v.id("counters")})
async def remove_counter(ctx, args):
    await ctx.db.delete(args["id"])


@query(args={"paginationOpts": pagination_opts_validator})
async def counters_page(ctx, args):
    return await ctx.db.query("counters").with_index("by_name").paginate(args["paginationOpts"])


@query(args={"value": v.any()})
async def echo(ctx, args):
    """Return the argument unchanged: the wire codec must round-trip every Convex value."""
    return args["value"]


@mutation(args={"value": v.any()})
async def echo_mutation(ctx, args):
    return args["value"]
