"""Functions of the codegen fixture project: every validator kind as an argument and result."""

from reactive import internal_action, pagination_opts_validator, query, v

EVERYTHING = {
    "s": v.string(),
    "f": v.float64(),
    "i": v.int64(),
    "b": v.boolean(),
    "n": v.null(),
    "by": v.bytes(),
    "note": v.id("notes"),
    "file": v.id("_storage"),
    "litS": v.literal('say "hi"'),
    "litT": v.literal(True),
    "litI": v.literal(-3),
    "litF": v.literal(2.5),
    "u": v.union(v.string(), v.float64()),
    "opt": v.optional(v.string()),
    "arr": v.array(v.union(v.string(), v.null())),
    "obj": v.object({"a": v.string(), "b-c": v.optional(v.float64())}),
    "rec": v.record(v.id("users"), v.boolean()),
    "recLit": v.record(v.union(v.literal("x"), v.literal("y")), v.int64()),
    "anything": v.any(),
    "empty": v.object({}),
}


@query(args=EVERYTHING, returns=v.union(v.object(EVERYTHING), v.null()))
async def everything(ctx, args):
    return None


@query
async def untyped(ctx, args):
    return None


@query(args={"paginationOpts": pagination_opts_validator, "tag": v.string()})
async def page(ctx, args):
    return {"page": [], "isDone": True, "continueCursor": ""}


@internal_action(args={"noteId": v.id("notes")}, returns=v.array(v.int64()))
async def secret(ctx, args):
    return []
