"""App code that tries to write system tables, or read them around ctx.db.system (every one of
these must be refused; tests/adversarial/test_system_tables.py calls them)."""

from typing import Any

from reactive import Document, MutationCtx, QueryCtx, mutation, query, v


@mutation(args={"table": v.string()})
async def insert(ctx: MutationCtx, args: dict[str, Any]) -> str:
    fields = {"sha256": "forged", "size": 1.0, "blobKey": "0" * 32}
    return await ctx.db.insert(args["table"], fields)


@mutation(args={"storageId": v.id("_storage"), "how": v.string()})
async def change(ctx: MutationCtx, args: dict[str, Any]) -> None:
    doc_id, forged = args["storageId"], {"size": 0.0, "blobKey": "0" * 32}
    if args["how"] == "patch":
        await ctx.db.patch(doc_id, forged)
    elif args["how"] == "replace":
        await ctx.db.replace(doc_id, forged)
    else:
        await ctx.db.delete(doc_id)


@query(args={"storageId": v.id("_storage")})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> Document | None:
    return await ctx.db.get(args["storageId"])


@query(args={})
async def scan(ctx: QueryCtx, args: dict[str, Any]) -> list[Document]:
    return await ctx.db.query("_storage").collect()
