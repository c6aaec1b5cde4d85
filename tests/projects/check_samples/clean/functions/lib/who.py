"""The caller's subject, or an error."""


async def subject(ctx):
    identity = await ctx.auth.get_user_identity()
    if identity is None:
        raise PermissionError("signed out")
    return identity["subject"]


def owned_by(db, owner):
    return db.query("notes").with_index("by_owner", lambda q: q.eq("owner", owner))
