"""Mistakes the author API's types must catch; each line marked `# E:` is a mypy error."""

from typing import Any

from reactive import MutationCtx, QueryCtx, mutation, query, v


@query(args={"channel": v.string()})
async def typo(ctx: QueryCtx, args: dict[str, Any]) -> list[Any]:
    return await ctx.db.qurey("messages").collect()  # E: has no attribute "qurey"


@query(args={})
async def wrong_return(ctx: QueryCtx, args: dict[str, Any]) -> str:
    return await ctx.db.query("messages").collect()  # E: Incompatible return value type


@query(args={})
async def writes_in_a_query(ctx: QueryCtx, args: dict[str, Any]) -> None:
    await ctx.db.insert("messages", {})  # E: "DatabaseReader" has no attribute "insert"


@mutation  # E: Argument 1 to "__call__" of "_Decorator" has incompatible type
async def wrong_ctx(ctx: str, args: dict[str, Any]) -> None:
    return None


async def caller(ctx: QueryCtx) -> int:
    return await typo(ctx, {})  # E: Incompatible return value type


async def identity_is_optional(ctx: MutationCtx) -> str:
    identity = await ctx.auth.get_user_identity()
    return identity.token_identifier  # E: Item "None" of "Identity | None" has no attribute


@query(args={})
async def schedules_in_a_query(ctx: QueryCtx, args: dict[str, Any]) -> None:
    await ctx.scheduler.run_after(0, "jobs:run", {})  # E: "QueryCtx" has no attribute "scheduler"


async def delay_is_a_number(ctx: MutationCtx) -> None:
    await ctx.scheduler.run_after("soon", "jobs:run", {})  # E: Argument 1 to "run_after"
