"""The registry of user functions: decorators, function paths, and loading a project.

A project is a directory with `schema.py` and `functions/`; `functions/a/b.py` exporting `f`
registers the path "a/b:f" (docs/PROTOCOL.md section 3). Decorators check their own configuration
when applied, so a bad validator fails at import time, not at the first call.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, TypeAlias, TypeVar, overload

from reactive import knobs
from reactive.context import ActionCtx, MutationCtx, QueryCtx
from reactive.crons import CronJobs
from reactive.errors import NotFoundError, ValidationError, excerpt
from reactive.schema import Schema
from reactive.types import FunctionKind
from reactive.validators import Validator, args_validator

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = [
    "AnyFunction",
    "FunctionDef",
    "FunctionKind",
    "HttpRoute",
    "HttpRouter",
    "Project",
    "Registry",
    "action",
    "count_functions_in_source",
    "http_action",
    "internal_action",
    "internal_mutation",
    "internal_query",
    "load_project",
    "mutation",
    "normalize_path",
    "query",
]

CtxT = TypeVar("CtxT")
ArgsT = TypeVar("ArgsT")
ResultT = TypeVar("ResultT")


@dataclass(frozen=True, slots=True)
class FunctionDef(Generic[CtxT, ArgsT, ResultT]):
    """A registered function: what it is, who may call it, how its args and result look.

    Generic in the handler's ctx, args and result types, so a type checker sees
    `await projects.list(ctx, args)` return what the handler returns."""

    kind: FunctionKind
    handler: Callable[[CtxT, ArgsT], Awaitable[ResultT]]
    internal: bool = False
    args: Validator | None = None
    returns: Validator | None = None
    #: Declared public on purpose (no auth check needed); read by `reactive check`.
    public: bool = False

    async def __call__(self, ctx: CtxT, args: ArgsT) -> ResultT:
        """Call the handler directly (tests, helpers); no validation."""
        return await self.handler(ctx, args)

    @property
    def name(self) -> str:
        return getattr(self.handler, "__name__", "<function>")


#: Any registered function, as the engine handles them.
AnyFunction: TypeAlias = "FunctionDef[Any, Any, Any]"

ArgsSpec: TypeAlias = "Mapping[str, Validator] | Validator | None"


class _Decorator(Generic[CtxT]):
    """`@query`, `@mutation(args=..., returns=...)`, ...: used bare or with configuration,
    and typed so that a handler keeps its signature and its ctx is checked (a query handler
    takes a QueryCtx)."""

    __slots__ = ("__name__", "_internal", "_kind")

    def __init__(self, kind: FunctionKind, *, internal: bool) -> None:
        self._kind, self._internal = kind, internal
        self.__name__ = f"{'internal_' if internal else ''}{kind.value}"

    @overload
    def __call__(
        self, handler: Callable[[CtxT, ArgsT], Awaitable[ResultT]], /
    ) -> FunctionDef[CtxT, ArgsT, ResultT]: ...

    @overload
    def __call__(
        self, *, args: ArgsSpec = None, returns: Validator | None = None, public: bool = False
    ) -> Callable[
        [Callable[[CtxT, ArgsT], Awaitable[ResultT]]], FunctionDef[CtxT, ArgsT, ResultT]
    ]: ...

    def __call__(
        self,
        handler: Callable[[CtxT, Any], Awaitable[Any]] | None = None,
        *,
        args: ArgsSpec = None,
        returns: Validator | None = None,
        public: bool = False,
    ) -> Any:
        validator = args_validator(args)
        if returns is not None and not isinstance(returns, Validator):
            raise ValidationError(f"returns= must be a validator (v.*), got {returns!r}")

        def wrap(fn: Callable[[CtxT, Any], Awaitable[Any]]) -> AnyFunction:
            if not callable(fn):
                raise TypeError(f"@{self.__name__} must decorate an async function, got {fn!r}")
            return FunctionDef(self._kind, fn, self._internal, validator, returns, public)

        return wrap(handler) if handler is not None else wrap


query: Final = _Decorator[QueryCtx](FunctionKind.QUERY, internal=False)
mutation: Final = _Decorator[MutationCtx](FunctionKind.MUTATION, internal=False)
action: Final = _Decorator[ActionCtx](FunctionKind.ACTION, internal=False)
internal_query: Final = _Decorator[QueryCtx](FunctionKind.QUERY, internal=True)
internal_mutation: Final = _Decorator[MutationCtx](FunctionKind.MUTATION, internal=True)
internal_action: Final = _Decorator[ActionCtx](FunctionKind.ACTION, internal=True)


# -- HTTP actions -----------------------------------------------------------------------------


#: An HTTP action's handler: `async def handler(ctx, request) -> Response` (starlette's).
HttpHandler: TypeAlias = "Callable[[ActionCtx, Request], Awaitable[Response]]"


@dataclass(frozen=True, slots=True)
class HttpActionDef:
    handler: HttpHandler


def http_action(handler: HttpHandler) -> HttpActionDef:
    """Mark `async def handler(ctx, request) -> Response` as an HTTP action."""
    if not callable(handler):
        raise TypeError(f"http_action needs an async function, got {handler!r}")
    return HttpActionDef(handler)


@dataclass(frozen=True, slots=True)
class HttpRoute:
    method: str
    path: str
    prefix: bool
    action: HttpActionDef
    #: Largest request body this route reads; None: knobs.HTTP_ACTION_MAX_BODY_BYTES.
    max_body_bytes: int | None = None


_HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"})


class HttpRouter:
    """`http.route(path="/webhooks/stripe", method="POST", handler=...)`, as Convex's."""

    def __init__(self) -> None:
        self.routes: list[HttpRoute] = []

    def route(
        self,
        *,
        method: str,
        handler: HttpActionDef | HttpHandler,
        path: str | None = None,
        path_prefix: str | None = None,
        max_body_bytes: int | None = None,
    ) -> None:
        """Route `method` requests for `path` (or every path under `path_prefix`) to `handler`.

        `max_body_bytes` bounds the request body the handler may read (default
        knobs.HTTP_ACTION_MAX_BODY_BYTES); a longer body is answered 413 before it runs.
        """
        method = method.upper()
        if method not in _HTTP_METHODS:
            raise ValueError(f"http route: unsupported method {method!r}")
        if (path is None) == (path_prefix is None):
            raise ValueError("http route: give exactly one of path= or path_prefix=")
        target = path if path is not None else path_prefix
        assert target is not None
        if not target.startswith("/") or target.startswith("/api/"):
            raise ValueError(f"http route {target!r}: must start with '/' and not with /api/")
        if path_prefix is not None and not path_prefix.endswith("/"):
            raise ValueError(f"http route prefix {path_prefix!r} must end with '/'")
        if max_body_bytes is not None and max_body_bytes < 0:
            raise ValueError(f"http route {target!r}: max_body_bytes must be >= 0")
        action_def = handler if isinstance(handler, HttpActionDef) else http_action(handler)
        route = HttpRoute(method, target, path_prefix is not None, action_def, max_body_bytes)
        self.routes.append(route)

    def lookup(self, method: str, path: str) -> HttpRoute | None:
        exact = [r for r in self.routes if not r.prefix and r.path == path]
        prefixed = sorted(
            (r for r in self.routes if r.prefix and path.startswith(r.path)),
            key=lambda r: -len(r.path),
        )
        for route in (*exact, *prefixed):
            if route.method == method.upper():
                return route
        return None

    def allowed_methods(self, path: str) -> set[str]:
        return {
            r.method
            for r in self.routes
            if r.path == path or (r.prefix and path.startswith(r.path))
        }


# -- paths and the registry -------------------------------------------------------------------


def normalize_path(raw: object) -> str:
    """Canonical "module:function": split at the last ':' (none -> "default"), drop ".js"."""
    if not isinstance(raw, str) or not raw:
        raise NotFoundError(
            f"Invalid function path {excerpt(raw)}: give a string such as 'messages:list'",
            short_msg="BadConvexFunctionIdentifier",
        )
    if len(raw) > knobs.MAX_FUNCTION_PATH_CHARS:
        raise NotFoundError(
            f"Function path {excerpt(raw)} is too long: at most "
            f"{knobs.MAX_FUNCTION_PATH_CHARS} characters",
            short_msg="BadConvexFunctionIdentifier",
        )
    module, sep, name = raw.rpartition(":")
    if not sep:
        module, name = raw, "default"
    module = module.strip("/")
    if module.endswith(".js"):
        module = module[:-3]
    return f"{module}:{name}"


@dataclass(slots=True)
class Registry:
    functions: dict[str, AnyFunction] = field(default_factory=dict)

    def add(self, path: str, fn: AnyFunction) -> None:
        self.functions[path] = fn

    def lookup(self, raw_path: object, *, allow_internal: bool) -> tuple[str, AnyFunction]:
        path = normalize_path(raw_path)
        fn = self.functions.get(path)
        if fn is None or (fn.internal and not allow_internal):
            raise NotFoundError(
                f"Could not find public function for '{path}'. Did you forget to run "
                "`reactive dev` or `reactive deploy`?",
                short_msg="FunctionNotFound",
            )
        return path, fn

    def __iter__(self) -> Iterator[tuple[str, AnyFunction]]:
        return iter(sorted(self.functions.items()))


@dataclass(slots=True)
class Project:
    """Everything loaded from a project directory."""

    root: Path
    schema: Schema | None
    registry: Registry
    http: HttpRouter | None
    auth_providers: list[dict[str, Any]]
    #: The crons of `functions/crons.py` (None: it declares none).
    crons: CronJobs | None = None


_SPECIAL_MODULES = {"http", "auth_config"}


def load_project(root: str | Path, *, package: str = "functions") -> Project:
    """Import `schema.py` and every module under `functions/` of `root`.

    Modules are imported as the package `functions` with `root` on sys.path, so functions can
    import helpers (`from functions.lib.auth import require_auth`). Reloading first forgets
    every previously imported module of the project.
    """
    root = Path(root).resolve()
    _forget_project_modules(package)
    # First on sys.path, so that `schema` and `functions` resolve to this project even when
    # another project's directory is also on the path.
    with contextlib.suppress(ValueError):
        sys.path.remove(str(root))
    sys.path.insert(0, str(root))
    schema = _load_schema(root)
    registry = Registry()
    http: HttpRouter | None = None
    providers: list[dict[str, Any]] = []
    crons: CronJobs | None = None
    functions_dir = root / package
    if functions_dir.is_dir():
        for module_path, module in _import_tree(functions_dir, package):
            if module_path == "http":
                http = _find_router(module)
            elif module_path == "auth_config":
                providers = list(getattr(module, "providers", []))
            elif module_path == "crons":
                crons = _find_crons(module)
            for name, value in vars(module).items():
                if isinstance(value, FunctionDef) and module_path not in _SPECIAL_MODULES:
                    registry.add(f"{module_path}:{name}", value)
    return Project(root, schema, registry, http, providers, crons)


#: The decorators that register a function, as a project's source spells them.
_FUNCTION_DECORATORS = frozenset(
    {"query", "mutation", "action", "internal_query", "internal_mutation", "internal_action"}
)


def count_functions_in_source(root: str | Path, *, package: str = "functions") -> int:
    """How many functions the project at `root` defines, read from its source alone: every
    file is compiled (a syntax error is raised with its file and line) but nothing is run,
    so untrusted code can be checked this way. `load_project` is the exact count."""
    root = Path(root)
    if (root / "schema.py").is_file():
        _compiled(root / "schema.py", root)
    functions_dir = root / package
    found = 0
    for file, relative in _project_files(functions_dir) if functions_dir.is_dir() else []:
        tree = _compiled(file, root)
        if "/".join(relative.parts) not in _SPECIAL_MODULES:
            found += sum(1 for node in tree.body if _is_registered_function(node))
    return found


def _compiled(file: Path, root: Path) -> ast.Module:
    """The syntax tree of `file`, after compiling it (compiling finds errors parsing misses,
    such as `return` outside a function)."""
    source, name = file.read_bytes(), file.relative_to(root).as_posix()
    compile(source, name, "exec", dont_inherit=True)
    return ast.parse(source, name)


def _is_registered_function(node: ast.stmt) -> bool:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
        _decorator_name(decorator) in _FUNCTION_DECORATORS for decorator in node.decorator_list
    )


def _decorator_name(node: ast.expr) -> str | None:
    """`query` of `@query`, `@query(...)`, `@reactive.query(...)`."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def _load_schema(root: Path) -> Schema | None:
    if not (root / "schema.py").is_file():
        return None
    module = importlib.import_module("schema")
    schema = getattr(module, "schema", None) or getattr(module, "default", None)
    if schema is not None and not isinstance(schema, Schema):
        raise TypeError("schema.py must define `schema = define_schema({...})`")
    return schema


def _import_tree(directory: Path, package: str) -> Iterator[tuple[str, Any]]:
    """Import every `.py` file below `directory` (sub-directories need no __init__.py);
    files and directories starting with "_" or "." (e.g. `_generated`) are skipped."""
    for _, relative in _project_files(directory):
        module = importlib.import_module(".".join((package, *relative.parts)))
        yield "/".join(relative.parts), module


def _project_files(directory: Path) -> Iterator[tuple[Path, Path]]:
    """Each module file below `directory` and its path relative to it, without the suffix."""
    for file in sorted(directory.rglob("*.py")):
        relative = file.relative_to(directory).with_suffix("")
        if not any(part.startswith(("_", ".")) for part in relative.parts):
            yield file, relative


def _find_router(module: Any) -> HttpRouter | None:
    for name in ("http", "default", "router"):
        value = getattr(module, name, None)
        if isinstance(value, HttpRouter):
            return value
    return None


def _find_crons(module: Any) -> CronJobs | None:
    for name in ("crons", "default"):
        value = getattr(module, name, None)
        if isinstance(value, CronJobs):
            return value
    return None


def _forget_project_modules(package: str) -> None:
    for name in list(sys.modules):
        if name in (package, "schema") or name.startswith(f"{package}."):
            del sys.modules[name]
