"""A function in a sub-directory: its path is "nested/deep:run", api.nested.deep.run."""

from reactive import mutation, v


@mutation(args={}, returns=v.literal(1.0))
async def run(ctx, args):
    return 1.0
