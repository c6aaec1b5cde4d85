"""What an app exposes of file storage: upload URLs, file URLs, and how many files exist."""

from typing import Any

from reactive import ActionCtx, MutationCtx, QueryCtx, action, mutation, query, v


@mutation(args={})
async def upload_url(ctx: MutationCtx, args: dict[str, Any]) -> str:
    return await ctx.storage.generate_upload_url()


@query(args={"storageId": v.id("_storage")})
async def url(ctx: QueryCtx, args: dict[str, Any]) -> str | None:
    return await ctx.storage.get_url(args["storageId"])


@query(args={})
async def count(ctx: QueryCtx, args: dict[str, Any]) -> float:
    return float(len(await ctx.db.system.query("_storage").collect()))


@action(args={"text": v.string()})
async def store_text(ctx: ActionCtx, args: dict[str, Any]) -> str | None:
    storage_id = await ctx.storage.store(args["text"].encode(), "text/plain")
    return await ctx.storage.get_url(storage_id)
