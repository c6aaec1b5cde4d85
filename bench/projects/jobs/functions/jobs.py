"""The scheduler benchmark's jobs: each run records how late it began (ms after its due time)
and when, so the bench reads lateness and throughput from the database itself."""

import time
from typing import Any

from reactive import MutationCtx, internal, internal_mutation, mutation, v


@internal_mutation(args={"due": v.float64()})
async def mark(ctx: MutationCtx, args: dict[str, Any]) -> None:
    now = time.time() * 1000
    await ctx.db.insert("runs", {"late": now - args["due"], "at": now})


@mutation(args={"dues": v.array(v.float64())})
async def schedule(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """One job due at each of `dues` (unix ms)."""
    for due in args["dues"]:
        await ctx.scheduler.run_at(due, internal.jobs.mark, {"due": due})
