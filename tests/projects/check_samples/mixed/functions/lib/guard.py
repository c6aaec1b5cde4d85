"""Second level of the auth chain: the only place in this project that reads the identity."""

from reactive import AppError


async def signed_in(ctx):
    identity = await ctx.auth.get_user_identity()  # check: identity read
    if identity is None:
        raise AppError({"code": "UNAUTHORIZED"})
    return identity
