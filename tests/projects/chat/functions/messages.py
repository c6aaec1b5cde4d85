"""Functions of the chat test project: every kind of call and failure the protocol knows."""

import logging

from reactive import (
    AppError,
    action,
    internal_mutation,
    internal_query,
    mutation,
    pagination_opts_validator,
    query,
    v,
)

log = logging.getLogger("chat")


def _channel(ctx, channel):
    return ctx.db.query("messages").with_index("by_channel", lambda q: q.eq("channel", channel))


@query(args={"channel": v.string()})
async def list(ctx, args):
    print("listing", args["channel"])
    return await _channel(ctx, args["channel"]).order("desc").take(10)


@query(args={"channel": v.string(), "paginationOpts": pagination_opts_validator})
async def page(ctx, args):
    return await _channel(ctx, args["channel"]).paginate(args["paginationOpts"])


@query(args={})
async def whoami(ctx, args):
    identity = await ctx.auth.get_user_identity()
    return None if identity is None else identity["subject"]


@query(args={"channel": v.string()})
async def count(ctx, args):
    return float(len(await _channel(ctx, args["channel"]).collect()))


@query(args={"channel": v.string()})
async def first_or_fail(ctx, args):
    doc = await _channel(ctx, args["channel"]).first()
    if doc is None:
        raise AppError({"code": "EMPTY", "channel": args["channel"]})
    return doc["body"]


@mutation(args={"channel": v.string(), "body": v.string()}, returns=v.id("messages"))
async def send(ctx, args):
    if not args["body"].strip():
        raise AppError({"code": "EMPTY_BODY"})
    identity = await ctx.auth.get_user_identity()
    doc = {"channel": args["channel"], "body": args["body"]}
    if identity is not None:
        doc["author"] = identity["subject"]
    log.warning("sending to %s", args["channel"])
    return await ctx.db.insert("messages", doc)


@mutation(args={})
async def crash(ctx, args):
    raise RuntimeError("secret internals")


@internal_mutation(args={"channel": v.string(), "body": v.string()})
async def send_internal(ctx, args):
    return await ctx.db.insert("messages", args)


@internal_query(args={"channel": v.string()})
async def count_internal(ctx, args):
    return float(len(await _channel(ctx, args["channel"]).collect()))


@action(args={"channel": v.string(), "body": v.string()})
async def send_via_action(ctx, args):
    await ctx.run_mutation("messages:send_internal", args)
    return await ctx.run_query("messages:count_internal", {"channel": args["channel"]})


@action(args={})
async def fail_action(ctx, args):
    raise AppError("action says no")
