"""The project's source as `reactive check` reads it: the modules of functions/, parsed, with
their top-level bindings, and what a name used in them refers to (project functions, modules)."""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

PACKAGE = "functions"

NOTHING: frozenset[Any] = frozenset()
_REACTIVE_DECORATORS = frozenset(
    {"query", "mutation", "action", "internal_query", "internal_mutation", "internal_action"}
)

FunctionNode: TypeAlias = "ast.FunctionDef | ast.AsyncFunctionDef"


@dataclass(frozen=True, slots=True)
class Func:
    """A function defined at the top level of a project module."""

    module: str
    name: str
    line: int  # first line (of its first decorator), as in code.co_firstlineno


@dataclass(frozen=True, slots=True)
class Package:
    """A project module or package (`from functions.lib import auth`)."""

    name: str


References: TypeAlias = "frozenset[Func | Package]"


@dataclass(frozen=True, slots=True)
class Import:
    """`import module` (attr None) or `from module import attr`, with `module` absolute."""

    module: str
    attr: str | None


_Binding: TypeAlias = "FunctionNode | ast.ClassDef | Import | ast.expr | None"


@dataclass(slots=True)
class Source:
    """One parsed module of `functions/` and what its top-level names are bound to."""

    name: str
    file: str
    path: Path
    tree: ast.Module
    is_package: bool
    bindings: dict[str, _Binding] = field(default_factory=dict)
    defs: dict[tuple[str, int], FunctionNode] = field(default_factory=dict)

    def absolute(self, module: str | None, level: int) -> str:
        """The module a (possibly relative) import statement in this module names."""
        if level == 0:
            return module or ""
        parts = self.name.split(".") if self.is_package else self.name.split(".")[:-1]
        parts = parts[: len(parts) - (level - 1)]
        return ".".join([*parts, module] if module else parts)


def _read_sources(root: Path) -> dict[str, Source]:
    sources: dict[str, Source] = {}
    for file in sorted((root / PACKAGE).rglob("*.py")):
        relative = file.relative_to(root)
        parts = relative.with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        except SyntaxError:
            continue  # never imported (load_project would have failed); calls into it: unknown
        source = Source(name, relative.as_posix(), file.resolve(), tree, is_package)
        _collect_bindings(source, tree.body)
        sources[name] = source
    return sources


def _collect_bindings(source: Source, body: Sequence[ast.stmt]) -> None:
    """Top-level names in statement order (later bindings win), looking into if/try/with."""
    for stmt in body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            source.bindings[stmt.name] = stmt
            source.defs[(stmt.name, _first_line(stmt))] = stmt
        elif isinstance(stmt, ast.ClassDef):
            source.bindings[stmt.name] = stmt
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            source.bindings.update(import_bindings(source, stmt))
        elif isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
            _assignment_bindings(source, stmt)
        else:
            for block in ("body", "orelse", "finalbody", "handlers"):
                _collect_bindings(source, _statements(getattr(stmt, block, [])))


def _statements(items: Sequence[Any]) -> list[ast.stmt]:
    """Statements of a block; except-handlers contribute their bodies."""
    out: list[ast.stmt] = []
    for item in items:
        out += item.body if isinstance(item, ast.ExceptHandler) else [item]
    return out


def import_bindings(source: Source, stmt: ast.Import | ast.ImportFrom) -> dict[str, Import]:
    if isinstance(stmt, ast.Import):
        # `import a.b` binds `a`; `import a.b as c` binds `c` to a.b.
        bound = {alias.asname or alias.name.split(".")[0]: alias for alias in stmt.names}
        return {
            name: Import(alias.name if alias.asname else name, None)
            for name, alias in bound.items()
        }
    module = source.absolute(stmt.module, stmt.level)
    return {
        alias.asname or alias.name: Import(module, alias.name)
        for alias in stmt.names
        if alias.name != "*"
    }


def _assignment_bindings(source: Source, stmt: ast.Assign | ast.AnnAssign | ast.AugAssign) -> None:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    alias = stmt.value if len(targets) == 1 and not isinstance(stmt, ast.AugAssign) else None
    for target in targets:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                source.bindings[node.id] = alias if node is target else None


def _first_line(node: FunctionNode) -> int:
    """The line code objects report for a function: its first decorator's, else the def's."""
    return min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])


class SourceIndex:
    """The project's modules by name, and what names in them refer to across modules."""

    def __init__(self, sources: dict[str, Source]) -> None:
        self.sources = sources
        self.by_path = {source.path: source for source in sources.values()}
        self.packages = {
            ".".join(s.name.split(".")[:n])
            for s in sources.values()
            for n in range(1, s.name.count(".") + 2)
        }

    @classmethod
    def read(cls, root: Path) -> SourceIndex:
        return cls(_read_sources(root))

    # -- locating handlers --------------------------------------------------------------------

    def locate(self, handler: Callable[..., Any]) -> Func | str:
        """The top-level function a handler was compiled from, or why there is none."""
        code = getattr(handler, "__code__", None)
        if code is None:
            return f"handler {handler!r} has no Python code; not analysed"
        source = self.by_path.get(Path(code.co_filename).resolve())
        if source is None:
            return f"handler {code.co_name} is defined outside {PACKAGE}/; not analysed"
        if (code.co_name, code.co_firstlineno) in source.defs:
            return Func(source.name, code.co_name, code.co_firstlineno)
        return (
            f"{source.file}:{code.co_firstlineno} handler {code.co_name} is not a top-level "
            "function (a wrapper made by a decorator?); not analysed"
        )

    # -- names --------------------------------------------------------------------------------

    def definition(self, fn: Func) -> FunctionNode:
        return self.sources[fn.module].defs[(fn.name, fn.line)]

    def label(self, fn: Func) -> str:
        module = fn.module.removeprefix(f"{PACKAGE}.")
        return f"{module}.{fn.name}" if module != PACKAGE else fn.name

    def global_name(self, module: str, name: str, seen: frozenset[Any] = NOTHING) -> References:
        """What a module-level `name` of project module `module` refers to."""
        if (module, name) in seen:
            return NOTHING
        seen = seen | {(module, name)}
        source = self.sources.get(module)
        binding = source.bindings.get(name) if source is not None else None
        if source is None or binding is None:
            return self._submodule(module, name)
        if isinstance(binding, ast.FunctionDef | ast.AsyncFunctionDef):
            return frozenset({Func(module, name, _first_line(binding))})
        if isinstance(binding, Import):
            return self.imported(binding, seen)
        if isinstance(binding, ast.Name | ast.Attribute):
            return self._alias(module, binding, seen)
        return NOTHING

    def imported(self, target: Import, seen: frozenset[Any] = NOTHING) -> References:
        if target.attr is None:
            known = target.module in self.packages
            return frozenset({Package(target.module)}) if known else NOTHING
        return self.member(target.module, target.attr, seen)

    def member(self, module: str, name: str, seen: frozenset[Any] = NOTHING) -> References:
        submodule = self._submodule(module, name)
        return submodule or (
            self.global_name(module, name, seen) if module in self.sources else NOTHING
        )

    def _submodule(self, module: str, name: str) -> References:
        full = f"{module}.{name}"
        return frozenset({Package(full)}) if full in self.packages else NOTHING

    def _alias(self, module: str, node: ast.expr, seen: frozenset[Any]) -> References:
        """`check = auth.require_auth` at module level: names and attributes only."""
        if isinstance(node, ast.Name):
            return self.global_name(module, node.id, seen)
        assert isinstance(node, ast.Attribute)
        bases = self._alias(module, node.value, seen) if _is_dotted(node.value) else NOTHING
        return frozenset(
            value
            for base in bases
            if isinstance(base, Package)
            for value in self.member(base.name, node.attr, seen)
        )

    def opaque_decorator(self, module: str, node: FunctionNode) -> str | None:
        """The first decorator that may change what calling `node` does (not @query & co)."""
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if not self._is_reactive_decorator(module, target):
                return ast.unparse(target)
        return None

    def _is_reactive_decorator(self, module: str, node: ast.expr) -> bool:
        root = node
        while isinstance(root, ast.Attribute):
            root = root.value
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
        binding = self.sources[module].bindings.get(getattr(root, "id", ""))
        from_reactive = isinstance(binding, Import) and binding.module.startswith("reactive")
        return from_reactive and name in _REACTIVE_DECORATORS


def _is_dotted(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) or (
        isinstance(node, ast.Attribute) and _is_dotted(node.value)
    )
