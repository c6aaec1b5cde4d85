"""First level of the auth chain: membership, after sign-in (a relative import)."""

from .guard import signed_in


async def require_member(ctx, project_id):
    identity = await signed_in(ctx)
    return identity["subject"], project_id
