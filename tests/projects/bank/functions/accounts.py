"""Accounts: open them, move money between two, read the total (which transfers must keep)."""

from typing import Any

from reactive import AppError, Document, MutationCtx, QueryCtx, mutation, query, v


@mutation(args={"count": v.float64(), "balance": v.float64()})
async def open(ctx: MutationCtx, args: dict[str, Any]) -> None:
    for number in range(int(args["count"])):
        await ctx.db.insert("accounts", {"number": float(number), "balance": args["balance"]})


async def _account(ctx: MutationCtx, number: float) -> Document:
    found = await (
        ctx.db.query("accounts").with_index("by_number", lambda q: q.eq("number", number)).first()
    )
    if found is None:
        raise AppError({"code": "NO_SUCH_ACCOUNT", "number": number})
    return found


@mutation(args={"source": v.float64(), "target": v.float64(), "amount": v.float64()})
async def transfer(ctx: MutationCtx, args: dict[str, Any]) -> None:
    source = await _account(ctx, args["source"])
    target = await _account(ctx, args["target"])
    await ctx.db.patch(source["_id"], {"balance": source["balance"] - args["amount"]})
    await ctx.db.patch(target["_id"], {"balance": target["balance"] + args["amount"]})


@query(args={})
async def total(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The total and every balance: the balances change with each transfer, so a subscriber
    is sent every snapshot; the total must not."""
    accounts = await ctx.db.query("accounts").collect()
    balances = [a["balance"] for a in accounts]
    return {"accounts": float(len(accounts)), "total": sum(balances), "balances": balances}
