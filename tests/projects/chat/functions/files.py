"""File storage functions of the chat test project."""

from reactive import action, mutation, query, v


@mutation(args={})
async def generate_upload_url(ctx, args):
    return await ctx.storage.generate_upload_url()


@query(args={"storageId": v.id("_storage")})
async def url(ctx, args):
    return await ctx.storage.get_url(args["storageId"])


@query(args={"storageId": v.id("_storage")})
async def metadata(ctx, args):
    return await ctx.storage.get_metadata(args["storageId"])


@mutation(args={"storageId": v.id("_storage")})
async def remove(ctx, args):
    await ctx.storage.delete(args["storageId"])


@mutation(args={"storageId": v.id("_storage")})
async def remove_then_fail(ctx, args):
    await ctx.storage.delete(args["storageId"])
    raise RuntimeError("rolled back")


@action(args={"text": v.string()})
async def store_text(ctx, args):
    storage_id = await ctx.storage.store(args["text"].encode(), "text/plain")
    data = await ctx.storage.get(storage_id)
    return {
        "id": storage_id,
        "roundTrip": data.decode(),
        "url": await ctx.storage.get_url(storage_id),
    }
