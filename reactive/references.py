"""Function references: `api.projects.list` and `internal.users.getByClerkId` name the paths
"projects:list" and "users:getByClerkId" without importing the functions themselves.

References are built one attribute at a time, so any path can be named; whether it exists is
decided when it is called, as in Convex.
"""

from __future__ import annotations

__all__ = ["FunctionReference", "api", "internal", "reference_path"]


class FunctionReference:
    """`api.dir.file.fn` builds the path "dir/file:fn" one attribute at a time."""

    __slots__ = ("_parts",)

    def __init__(self, parts: tuple[str, ...] = ()) -> None:
        self._parts = parts

    def __getattr__(self, name: str) -> FunctionReference:
        if name.startswith("__"):
            raise AttributeError(name)
        return FunctionReference((*self._parts, name))

    @property
    def path(self) -> str:
        if len(self._parts) < 2:
            raise ValueError(f"incomplete function reference {'.'.join(self._parts)!r}")
        return "/".join(self._parts[:-1]) + ":" + self._parts[-1]

    def __repr__(self) -> str:
        return f"FunctionReference({'.'.join(self._parts)!r})"


#: References to public functions: `api.messages.list`.
api = FunctionReference()
#: References to internal functions (callable only from other functions).
internal = FunctionReference()


def reference_path(ref: str | FunctionReference) -> str:
    """The path a reference or a path string names."""
    if isinstance(ref, FunctionReference):
        return ref.path
    if isinstance(ref, str):
        return ref
    raise TypeError(f"expected a function path or reference (api.x.y), got {ref!r}")
