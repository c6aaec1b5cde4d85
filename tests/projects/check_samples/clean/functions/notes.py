"""Every public function indexed and guarded; imports a helper module as a whole."""

import functions.lib.who as who

import reactive as rf
from functions.lib import who as also_who
from reactive import v

current_subject = who.subject


@rf.query(args={})
async def mine(ctx, args):
    owner = await current_subject(ctx)
    return [note async for note in who.owned_by(ctx.db, owner)]


@rf.mutation(args={"text": v.string()})
async def add(ctx, args):
    owner = await also_who.subject(ctx)
    return await ctx.db.insert("notes", {"owner": owner, "text": args["text"]})


@rf.mutation(args={"noteId": v.id("notes")})
async def remove(ctx, args):
    try:
        owner = await who.subject(ctx)
    except PermissionError:
        return None
    note = await ctx.db.get(args["noteId"])
    if note is not None and note["owner"] == owner:
        await ctx.db.delete(args["noteId"])
    return None


@rf.query(args={}, public=True)
async def count(ctx, args):
    return len(await ctx.db.query("notes").with_index("by_owner").take(1000))
