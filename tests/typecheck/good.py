"""Typed handlers as an author writes them: mypy --strict accepts this module."""

from typing import Any

from reactive import CronJobs, Document, Id, MutationCtx, QueryCtx, api, mutation, query, v


@query(args={"channel": v.string()})
async def latest(ctx: QueryCtx, args: dict[str, Any]) -> list[Document]:
    return (
        await ctx.db.query("messages")
        .with_index("by_channel", lambda q: q.eq("channel", args["channel"]))
        .take(10)
    )


@query(args={"channel": v.string(), "text": v.string()})
async def search(ctx: QueryCtx, args: dict[str, Any]) -> list[Document]:
    return (
        await ctx.db.query("messages")
        .with_search_index(
            "search_body", lambda q: q.search("body", args["text"]).eq("channel", args["channel"])
        )
        .filter(lambda q: q.neq(q.field("author"), "bot"))
        .take(10)
    )


@mutation(args={"body": v.string()})
async def send(ctx: MutationCtx, args: dict[str, Any]) -> Id:
    identity = await ctx.auth.get_user_identity()
    author = "anonymous" if identity is None else identity.token_identifier
    url = await ctx.storage.generate_upload_url()
    return await ctx.db.insert("messages", {"body": args["body"], "author": author, "u": url})


async def helper(ctx: QueryCtx) -> int:
    found: list[Document] = await latest(ctx, {"channel": "general"})
    return len(found)


@mutation(args={"body": v.string()})
async def send_later(ctx: MutationCtx, args: dict[str, Any]) -> Id:
    job: Id = await ctx.scheduler.run_after(1000, api.messages.send, {"body": args["body"]})
    await ctx.scheduler.run_at(1.7e12, "messages:send", {"body": "at"})
    await ctx.scheduler.cancel(job)
    return job


crons = CronJobs()
crons.daily("digest", {"hourUTC": 8, "minuteUTC": 0}, api.messages.send, {"body": "digest"})
