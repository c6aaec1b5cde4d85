"""One function per case `reactive check` must tell apart (see tests/test_check.py)."""

from functions.lib.access import require_member
from functions.lib.guard import signed_in
from functions.lib.reads import all_tasks, project_tasks, tasks_table

from reactive import internal_query, mutation, query, v


@query(args={"projectId": v.string()})
async def byProject(ctx, args):
    await require_member(ctx, args["projectId"])
    tasks = ctx.db.query("tasks").with_index(
        "by_projectId", lambda q: q.eq("projectId", args["projectId"])
    )
    return await tasks.order("desc").take(10)


@query(args={})
async def everything(ctx, args):
    await signed_in(ctx)
    return await ctx.db.query("tasks").full_table_scan().collect()  # check: full scan


@query(args={})
async def openOnes(ctx, args):
    await signed_in(ctx)
    tasks = ctx.db.query("tasks")  # check: implicit scan
    return await tasks.filter(lambda q: q.eq(q.field("done"), False)).collect()


@query(args={})
async def viaHelper(ctx, args):
    await signed_in(ctx)
    return await all_tasks(ctx.db)


@query(args={"projectId": v.string()})
async def builtByHelper(ctx, args):
    await signed_in(ctx)
    tasks = tasks_table(ctx.db)
    tasks = tasks.with_index("by_projectId", lambda q: q.eq("projectId", args["projectId"]))
    first = await tasks.first()
    rest = await project_tasks(ctx.db, args["projectId"]).collect()
    return [first, *rest]


@mutation(args={"taskId": v.id("tasks")})
async def unguarded(ctx, args):
    task = await ctx.db.get(args["taskId"])
    await ctx.db.patch(args["taskId"], {"done": not task["done"]})


@query(args={}, public=True)
async def stats(ctx, args):
    events = ctx.db.query("events").with_index("by_creation_time")
    return len(await events.take(100))


_CHECKS = {"member": signed_in}


@query(args={"how": v.string()})
async def dynamic(ctx, args):
    check = _CHECKS[args["how"]]
    await check(ctx)  # check: dynamic dispatch
    return await ctx.db.query("events").with_index("by_creation_time").first()


@internal_query(args={})
async def dump(ctx, args):
    return await ctx.db.query("tasks").collect()
