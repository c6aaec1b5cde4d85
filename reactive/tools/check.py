"""`reactive check`: index and auth coverage of every registered function, by static analysis.
Invariant: a column passes only when the analysis shows it does; what it cannot follow (dynamic
dispatch, ctx handed to code outside the project) is "unknown", and unknown fails.
"""

from __future__ import annotations

import ast
import contextlib
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, TypeAlias

from reactive.functions import AnyFunction, FunctionKind, load_project

__all__ = ["CheckReport", "Finding", "FunctionCheck", "Location", "Verdict", "run_check"]

PACKAGE = "functions"


# -- the report -------------------------------------------------------------------------------


class Verdict(StrEnum):
    """One column of one function: YES, PUBLIC (auth) and NA (index, actions) pass."""

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"
    PUBLIC = "public"
    NA = "n/a"


_PASSING = frozenset({Verdict.YES, Verdict.PUBLIC, Verdict.NA})
_NO_AUTH = "no call to ctx.auth.get_user_identity(), directly or through project helpers"


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """A line of the project's source; `file` is relative to the project root."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """A fact about a function's code: where, what, and through which helpers it was reached."""

    location: Location
    message: str
    via: tuple[str, ...] = ()

    def __str__(self) -> str:
        route = f" (via {' -> '.join(self.via)})" if self.via else ""
        return f"{self.location} {self.message}{route}"

    def through(self, helper: str) -> Finding:
        return replace(self, via=(helper, *self.via))


@dataclass(frozen=True, slots=True)
class FunctionCheck:
    """The verdicts for one registered function, with the findings behind them.

    `index_findings`: the unindexed reads (NO) or what could not be followed (UNKNOWN).
    `auth_findings`: where the identity is read (YES) or what could not be followed (UNKNOWN).
    """

    path: str
    kind: FunctionKind
    internal: bool
    index: Verdict
    auth: Verdict
    index_findings: tuple[Finding, ...] = ()
    auth_findings: tuple[Finding, ...] = ()
    #: Indexed reads (ctx.db.get, with_index queries) seen along the calls followed.
    indexed_reads: int = 0
    #: Why the handler could not be analysed at all (both columns are then unknown).
    note: str = ""

    @property
    def label(self) -> str:
        return f"internal {self.kind.value}" if self.internal else self.kind.value

    @property
    def index_ok(self) -> bool:
        return self.index in _PASSING

    @property
    def auth_ok(self) -> bool:
        return self.auth in _PASSING

    @property
    def passes(self) -> bool:
        return self.index_ok and self.auth_ok

    def index_cell(self) -> str:
        if self.index is Verdict.NO:
            return f"no {self.index_findings[0].location}"
        return self.index.value

    def explanations(self) -> list[str]:
        """Why a failing column failed, one line each (auth only for scored functions)."""
        lines = [f"index: {finding}" for finding in self.index_findings if not self.index_ok]
        if not self.auth_ok and not self.internal:
            lines += [f"auth: {finding}" for finding in self.auth_findings]
            if self.auth is Verdict.NO:
                lines.append(f"auth: {_NO_AUTH}")
        if self.note:
            lines.append(self.note)
        return lines


@dataclass(frozen=True, slots=True)
class CheckReport:
    """Every registered function's verdicts. Internal functions are listed but not scored."""

    functions: tuple[FunctionCheck, ...]
    #: Project helpers through which some function reaches ctx.auth.get_user_identity().
    auth_helpers: tuple[str, ...] = ()

    @property
    def scored(self) -> tuple[FunctionCheck, ...]:
        return tuple(check for check in self.functions if not check.internal)

    @property
    def failures(self) -> tuple[FunctionCheck, ...]:
        return tuple(check for check in self.scored if not check.passes)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def index_coverage(self) -> tuple[int, int]:
        """(passed, counted) over public functions that read the database (not NA)."""
        counted = [check for check in self.scored if check.index is not Verdict.NA]
        return sum(check.index_ok for check in counted), len(counted)

    @property
    def auth_coverage(self) -> tuple[int, int]:
        return sum(check.auth_ok for check in self.scored), len(self.scored)

    def render(self) -> str:
        """The table (public functions, then internal ones), notes, and the totals line."""
        widths = _widths(self.functions)
        internal = [check for check in self.functions if check.internal]
        out = [_line(("function", "kind", "index", "auth"), widths)]
        out += _rows(self.scored, widths)
        if internal:
            out += ["", "internal functions (listed, not scored):", *_rows(internal, widths)]
        if self.auth_helpers:
            helpers = f"auth checked through: {', '.join(self.auth_helpers)}"
            out += ["", textwrap.fill(helpers, 100, subsequent_indent="    ")]
        out += ["", *_LIMITS, "", self.totals()]
        return "\n".join(out)

    def totals(self) -> str:
        return (
            f"index coverage {_percent(*self.index_coverage)}, "
            f"auth coverage {_percent(*self.auth_coverage)}"
        )


_LIMITS = (
    "notes: calls into functions/ are followed; ctx handed to anything else (dynamic dispatch,",
    "other packages, containers) is 'unknown' and fails. Targets of ctx.run_* and of the",
    "scheduler are checked on their own; HTTP actions are not checked; an action's index is",
    "n/a unless it reads ctx.db.",
)


def _percent(passed: int, counted: int) -> str:
    # Rounded down, so 99.6 % never shows as 100 %.
    share = "n/a" if counted == 0 else f"{passed * 100 // counted} %"
    return f"{share} ({passed}/{counted})"


def _widths(checks: Sequence[FunctionCheck]) -> list[int]:
    return [
        max([len("function"), *(len(check.path) for check in checks)]),
        max([len("kind"), *(len(check.label) for check in checks)]),
        max([len("index"), *(len(check.index_cell()) for check in checks)]),
    ]


def _rows(checks: Iterable[FunctionCheck], widths: Sequence[int]) -> list[str]:
    out: list[str] = []
    for check in checks:
        out.append(_line((check.path, check.label, check.index_cell(), check.auth.value), widths))
        out += [f"    {line}" for line in check.explanations()]
    return out


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
    return "  ".join([*padded, *cells[len(widths) :]]).rstrip()


# -- entry point ------------------------------------------------------------------------------


def run_check(root: str | Path) -> CheckReport:
    """Load the project at `root` (as `reactive dev` does) and check each registered function."""
    root = Path(root).resolve()
    with _isolated_imports():
        project = load_project(root, package=PACKAGE)
    analyzer = _Analyzer(_read_sources(root))
    checks = tuple(_check_function(analyzer, path, fn) for path, fn in project.registry)
    checked = [check for check in checks if check.auth is Verdict.YES]
    helpers = sorted({name for c in checked for finding in c.auth_findings for name in finding.via})
    return CheckReport(checks, tuple(helpers))


@contextlib.contextmanager
def _isolated_imports() -> Iterator[None]:
    """Undo what loading the project did to sys.path and sys.modules: the check only needs
    the handlers' code objects, and the caller's own imports must stay as they were."""
    path = list(sys.path)
    ours = {name: module for name, module in sys.modules.items() if _project_module(name)}
    try:
        yield
    finally:
        sys.path[:] = path
        for name in [name for name in sys.modules if _project_module(name)]:
            del sys.modules[name]
        sys.modules.update(ours)


def _project_module(name: str) -> bool:
    return name in (PACKAGE, "schema") or name.startswith(f"{PACKAGE}.")


def _check_function(analyzer: _Analyzer, path: str, fn: AnyFunction) -> FunctionCheck:
    base = FunctionCheck(path, fn.kind, fn.internal, Verdict.UNKNOWN, Verdict.UNKNOWN)
    located = analyzer.locate(fn.handler)
    if isinstance(located, str):
        auth = Verdict.PUBLIC if fn.public else Verdict.UNKNOWN
        return replace(base, auth=auth, note=located)
    effects = analyzer.run_handler(located)
    index, index_findings = _index_verdict(fn.kind, effects)
    auth, auth_findings = _auth_verdict(fn.public, effects)
    return replace(
        base,
        index=index,
        auth=auth,
        index_findings=index_findings,
        auth_findings=auth_findings,
        indexed_reads=effects.reads,
    )


def _index_verdict(kind: FunctionKind, effects: _Effects) -> tuple[Verdict, tuple[Finding, ...]]:
    if effects.scans:
        return Verdict.NO, _sorted(effects.scans)
    if kind is FunctionKind.ACTION:
        # An action's ctx has no db, so ctx handed to unknown code cannot read through it.
        return (Verdict.YES if effects.reads else Verdict.NA), ()
    if effects.index_unknowns:
        return Verdict.UNKNOWN, _sorted(effects.index_unknowns)
    return Verdict.YES, ()


def _auth_verdict(public: bool, effects: _Effects) -> tuple[Verdict, tuple[Finding, ...]]:
    if public:
        return Verdict.PUBLIC, ()
    if effects.auth_checks:
        return Verdict.YES, _sorted(effects.auth_checks)
    if effects.auth_unknowns:
        return Verdict.UNKNOWN, _sorted(effects.auth_unknowns)
    return Verdict.NO, ()


def _sorted(findings: dict[tuple[Location, str], Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings.values()))


# -- what the analysis tracks -----------------------------------------------------------------
#
# Each handler body is run abstractly over `ast`. The values tracked are the ctx, `ctx.db`,
# `ctx.auth`, query builders (with how they will scan), and project functions and modules.
# Calls to functions defined under functions/ are followed with the values their arguments
# carry (summaries memoised per function and argument values), so a helper that receives ctx,
# ctx.db or a builder is checked where it does the work. Branches are joined: a read or an auth
# call on any path counts. ctx.run_query/run_mutation/run_action and the scheduler are not
# followed: their targets are registered functions with rows of their own.


class _Role(Enum):
    CTX = "ctx"
    DB = "ctx.db"
    AUTH = "ctx.auth"


class _Scan(Enum):
    INDEXED = "indexed"
    FULL = "full"
    IMPLICIT = "implicit"


@dataclass(frozen=True, slots=True)
class _Query:
    """A `ctx.db.query(table)` builder: where it was started and how it will scan."""

    origin: Location
    table: str | None
    scan: _Scan = _Scan.IMPLICIT
    filtered: bool = False

    def describe(self) -> str:
        table = repr(self.table) if self.table is not None else "a computed table"
        if self.scan is _Scan.FULL:
            text = f"full_table_scan() of {table}"
        else:
            text = f"query of {table} without with_index() (an implicit full table scan)"
        return text + ("; .filter() does not narrow what is read" if self.filtered else "")


@dataclass(frozen=True, slots=True)
class _Method:
    """`ctx.db.get`, `q.with_index`, ...: an attribute of a tracked value, not yet called."""

    owner: _Role | _Query
    name: str


@dataclass(frozen=True, slots=True)
class _Func:
    """A function defined at the top level of a project module."""

    module: str
    name: str
    line: int  # first line (of its first decorator), as in code.co_firstlineno


@dataclass(frozen=True, slots=True)
class _Package:
    """A project module or package (`from functions.lib import auth`)."""

    name: str


@dataclass(frozen=True, slots=True, eq=False)
class _Closure:
    """A function defined inside the function being analysed, with the names it can see."""

    node: ast.FunctionDef | ast.AsyncFunctionDef
    module: str
    env: dict[str, frozenset[Any]]


_Value: TypeAlias = "_Role | _Query | _Method | _Func | _Package | _Closure"
_Values: TypeAlias = "frozenset[_Value]"
_Env: TypeAlias = "dict[str, _Values]"
_FunctionNode: TypeAlias = "ast.FunctionDef | ast.AsyncFunctionDef"

_NOTHING: frozenset[Any] = frozenset()
_DB_WRITES = frozenset({"insert", "patch", "replace", "delete", "normalize_id"})
_REACTIVE_DECORATORS = frozenset(
    {"query", "mutation", "action", "internal_query", "internal_mutation", "internal_action"}
)
#: Builtins that only look at an object; handing ctx to them cannot read or check anything.
_INSPECTING_BUILTINS = frozenset({"isinstance", "issubclass", "type", "id", "callable", "hasattr"})
_LOOP_PASSES = 4

_Key: TypeAlias = "tuple[Location, str]"


@dataclass(slots=True)
class _Effects:
    """What running a function (and what it calls) does; one finding kept per site."""

    scans: dict[_Key, Finding] = field(default_factory=dict)
    index_unknowns: dict[_Key, Finding] = field(default_factory=dict)
    auth_checks: dict[_Key, Finding] = field(default_factory=dict)
    auth_unknowns: dict[_Key, Finding] = field(default_factory=dict)
    reads: int = 0  # reads that use an index (ctx.db.get, with_index queries)

    def _groups(self) -> tuple[dict[_Key, Finding], ...]:
        return (self.scans, self.index_unknowns, self.auth_checks, self.auth_unknowns)

    def absorb(self, other: _Effects, helper: str) -> None:
        for mine, theirs in zip(self._groups(), other._groups(), strict=True):
            for key, finding in theirs.items():
                mine.setdefault(key, finding.through(helper))
        self.reads += other.reads


def _add(group: dict[_Key, Finding], finding: Finding) -> None:
    group.setdefault((finding.location, finding.message), finding)


@dataclass(frozen=True, slots=True)
class _Summary:
    effects: _Effects
    returns: _Values


# -- the project's source ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Import:
    """`import module` (attr None) or `from module import attr`, with `module` absolute."""

    module: str
    attr: str | None


_Binding: TypeAlias = "_FunctionNode | ast.ClassDef | _Import | ast.expr | None"


@dataclass(slots=True)
class _Source:
    """One parsed module of `functions/` and what its top-level names are bound to."""

    name: str
    file: str
    path: Path
    tree: ast.Module
    is_package: bool
    bindings: dict[str, _Binding] = field(default_factory=dict)
    defs: dict[tuple[str, int], _FunctionNode] = field(default_factory=dict)

    def absolute(self, module: str | None, level: int) -> str:
        """The module a (possibly relative) import statement in this module names."""
        if level == 0:
            return module or ""
        parts = self.name.split(".") if self.is_package else self.name.split(".")[:-1]
        parts = parts[: len(parts) - (level - 1)]
        return ".".join([*parts, module] if module else parts)


def _read_sources(root: Path) -> dict[str, _Source]:
    sources: dict[str, _Source] = {}
    for file in sorted((root / PACKAGE).rglob("*.py")):
        relative = file.relative_to(root)
        parts = relative.with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        except SyntaxError:
            continue  # never imported (load_project would have failed); calls into it: unknown
        source = _Source(name, relative.as_posix(), file.resolve(), tree, is_package)
        _collect_bindings(source, tree.body)
        sources[name] = source
    return sources


def _collect_bindings(source: _Source, body: Sequence[ast.stmt]) -> None:
    """Top-level names in statement order (later bindings win), looking into if/try/with."""
    for stmt in body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            source.bindings[stmt.name] = stmt
            source.defs[(stmt.name, _first_line(stmt))] = stmt
        elif isinstance(stmt, ast.ClassDef):
            source.bindings[stmt.name] = stmt
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            source.bindings.update(_import_bindings(source, stmt))
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


def _import_bindings(source: _Source, stmt: ast.Import | ast.ImportFrom) -> dict[str, _Import]:
    if isinstance(stmt, ast.Import):
        # `import a.b` binds `a`; `import a.b as c` binds `c` to a.b.
        bound = {alias.asname or alias.name.split(".")[0]: alias for alias in stmt.names}
        return {
            name: _Import(alias.name if alias.asname else name, None)
            for name, alias in bound.items()
        }
    module = source.absolute(stmt.module, stmt.level)
    return {
        alias.asname or alias.name: _Import(module, alias.name)
        for alias in stmt.names
        if alias.name != "*"
    }


def _assignment_bindings(source: _Source, stmt: ast.Assign | ast.AnnAssign | ast.AugAssign) -> None:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    alias = stmt.value if len(targets) == 1 and not isinstance(stmt, ast.AugAssign) else None
    for target in targets:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                source.bindings[node.id] = alias if node is target else None


def _first_line(node: _FunctionNode) -> int:
    """The line code objects report for a function: its first decorator's, else the def's."""
    return min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])


# -- the analyzer: project-wide resolution and memoised summaries ------------------------------


class _Analyzer:
    """Resolves names across the project's modules and summarises functions per argument
    values; a function already being summarised (recursion) contributes nothing more."""

    def __init__(self, sources: dict[str, _Source]) -> None:
        self.sources = sources
        self.by_path = {source.path: source for source in sources.values()}
        self.packages = {
            ".".join(s.name.split(".")[:n])
            for s in sources.values()
            for n in range(1, s.name.count(".") + 2)
        }
        self.memo: dict[tuple[Any, ...], _Summary] = {}
        self.active: set[Any] = set()
        #: Functions whose (still running) summary a recursive call had to take as empty;
        #: summaries computed meanwhile lack their effects, so they are not memoised.
        self.cut: set[_Func] = set()

    # -- locating handlers --------------------------------------------------------------------

    def locate(self, handler: Callable[..., Any]) -> _Func | str:
        """The top-level function a handler was compiled from, or why there is none."""
        code = getattr(handler, "__code__", None)
        if code is None:
            return f"handler {handler!r} has no Python code; not analysed"
        source = self.by_path.get(Path(code.co_filename).resolve())
        if source is None:
            return f"handler {code.co_name} is defined outside {PACKAGE}/; not analysed"
        if (code.co_name, code.co_firstlineno) in source.defs:
            return _Func(source.name, code.co_name, code.co_firstlineno)
        return (
            f"{source.file}:{code.co_firstlineno} handler {code.co_name} is not a top-level "
            "function (a wrapper made by a decorator?); not analysed"
        )

    def run_handler(self, handler: _Func) -> _Effects:
        node = self.definition(handler)
        params = _parameters(node)
        env: _Env = {name: _NOTHING for name in params}
        if params:
            env[params[0]] = frozenset({_Role.CTX})
        return self.summarize(handler, env).effects

    # -- names --------------------------------------------------------------------------------

    def definition(self, fn: _Func) -> _FunctionNode:
        return self.sources[fn.module].defs[(fn.name, fn.line)]

    def label(self, fn: _Func) -> str:
        module = fn.module.removeprefix(f"{PACKAGE}.")
        return f"{module}.{fn.name}" if module != PACKAGE else fn.name

    def global_name(self, module: str, name: str, seen: frozenset[Any] = _NOTHING) -> _Values:
        """What a module-level `name` of project module `module` refers to."""
        if (module, name) in seen:
            return _NOTHING
        seen = seen | {(module, name)}
        source = self.sources.get(module)
        binding = source.bindings.get(name) if source is not None else None
        if source is None or binding is None:
            return self._submodule(module, name)
        if isinstance(binding, ast.FunctionDef | ast.AsyncFunctionDef):
            return frozenset({_Func(module, name, _first_line(binding))})
        if isinstance(binding, _Import):
            return self.imported(binding, seen)
        if isinstance(binding, ast.Name | ast.Attribute):
            return self._alias(module, binding, seen)
        return _NOTHING

    def imported(self, target: _Import, seen: frozenset[Any] = _NOTHING) -> _Values:
        if target.attr is None:
            known = target.module in self.packages
            return frozenset({_Package(target.module)}) if known else _NOTHING
        return self.member(target.module, target.attr, seen)

    def member(self, module: str, name: str, seen: frozenset[Any] = _NOTHING) -> _Values:
        submodule = self._submodule(module, name)
        return submodule or (
            self.global_name(module, name, seen) if module in self.sources else _NOTHING
        )

    def _submodule(self, module: str, name: str) -> _Values:
        full = f"{module}.{name}"
        return frozenset({_Package(full)}) if full in self.packages else _NOTHING

    def _alias(self, module: str, node: ast.expr, seen: frozenset[Any]) -> _Values:
        """`check = auth.require_auth` at module level: names and attributes only."""
        if isinstance(node, ast.Name):
            return self.global_name(module, node.id, seen)
        assert isinstance(node, ast.Attribute)
        bases = self._alias(module, node.value, seen) if _is_dotted(node.value) else _NOTHING
        return frozenset(
            value
            for base in bases
            if isinstance(base, _Package)
            for value in self.member(base.name, node.attr, seen)
        )

    def attribute(self, value: _Value, name: str) -> _Values:
        if value is _Role.CTX:
            role = {"db": _Role.DB, "auth": _Role.AUTH}.get(name)
            return frozenset({role}) if role is not None else _NOTHING
        if value is _Role.DB or value is _Role.AUTH or isinstance(value, _Query):
            return frozenset({_Method(value, name)})
        if isinstance(value, _Package):
            return self.member(value.name, name)
        return _NOTHING

    def opaque_decorator(self, module: str, node: _FunctionNode) -> str | None:
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
        from_reactive = isinstance(binding, _Import) and binding.module.startswith("reactive")
        return from_reactive and name in _REACTIVE_DECORATORS

    # -- summaries ----------------------------------------------------------------------------

    def summarize(self, fn: _Func, env: _Env) -> _Summary:
        key = (fn, tuple(sorted(env.items(), key=lambda item: item[0])))
        if key in self.memo:
            return self.memo[key]
        if fn in self.active:
            self.cut.add(fn)
            return _Summary(_Effects(), _NOTHING)
        self.active.add(fn)
        try:
            summary = self.interpret(self.definition(fn), fn.module, env)
        finally:
            self.active.discard(fn)
            self.cut.discard(fn)  # its own effects are all in `summary` now
        if not self.cut:
            self.memo[key] = summary
        return summary

    def interpret(self, node: _FunctionNode, module: str, env: _Env) -> _Summary:
        interpreter = _Interpreter(self, self.sources[module], env)
        interpreter.run(node.body)
        return _Summary(interpreter.effects, frozenset(interpreter.returns))


def _is_dotted(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) or (
        isinstance(node, ast.Attribute) and _is_dotted(node.value)
    )


def _parameters(node: _FunctionNode | ast.Lambda) -> list[str]:
    """Every parameter name, positional ones first and in order."""
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    names += [a.arg for a in args.kwonlyargs]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return names


# -- the interpreter: one function body -------------------------------------------------------


class _Interpreter:
    """Runs one function body abstractly. `env` maps local names to the values they may hold
    (flow-sensitive; branches are joined); effects of every path are collected."""

    def __init__(self, analyzer: _Analyzer, source: _Source, env: _Env) -> None:
        self.analyzer = analyzer
        self.source = source
        self.env: _Env = dict(env)
        self.effects = _Effects()
        self.returns: set[_Value] = set()

    def at(self, node: ast.AST) -> Location:
        return Location(self.source.file, getattr(node, "lineno", 0))

    # -- statements ---------------------------------------------------------------------------

    def run(self, body: Sequence[ast.stmt]) -> None:
        for stmt in body:
            handler = getattr(self, f"_s_{type(stmt).__name__}", None)
            if handler is not None:
                handler(stmt)
            else:  # Expr, Raise, Assert, Delete, Global, ...: just what they evaluate
                self.visit_fields(stmt)

    def visit_fields(self, node: ast.AST) -> None:
        for _, value in ast.iter_fields(node):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, ast.expr):
                    self.eval(item)
                elif isinstance(item, ast.stmt):
                    self.run([item])
                elif isinstance(item, ast.AST):
                    self.visit_fields(item)

    def _s_Return(self, node: ast.Return) -> None:
        self.returns |= self.eval(node.value)

    def _s_Assign(self, node: ast.Assign) -> None:
        target, value = node.targets[0], node.value
        pairs = _parallel(target, value) if len(node.targets) == 1 else None
        if pairs is not None:
            evaluated = [(t, self.eval(v)) for t, v in pairs]  # all right sides first
            for t, values in evaluated:
                self.assign(t, values)
            return
        values = self.eval(value)
        for target in node.targets:
            self.assign(target, values)

    def _s_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.assign(node.target, self.eval(node.value))

    def _s_AugAssign(self, node: ast.AugAssign) -> None:
        values = self.eval(node.value)
        if isinstance(node.target, ast.Name):
            self.eval(node.target)
        else:
            self.assign(node.target, values)

    def _s_FunctionDef(self, node: _FunctionNode) -> None:
        closure = _Closure(node, self.source.name, dict(self.env))
        closure.env[node.name] = frozenset({closure})
        self.env[node.name] = frozenset({closure})

    _s_AsyncFunctionDef = _s_FunctionDef

    def _s_ClassDef(self, node: ast.ClassDef) -> None:
        self.env[node.name] = _NOTHING

    def _s_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for name, target in _import_bindings(self.source, node).items():
            self.env[name] = self.analyzer.imported(target)

    _s_ImportFrom = _s_Import

    def _s_If(self, node: ast.If) -> None:
        self.eval(node.test)
        self.branches([node.body, node.orelse])

    def _s_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.iterate(self.eval(node.iter))
        self.assign(node.target, _NOTHING)
        self.loop(node.body)
        self.run(node.orelse)

    _s_AsyncFor = _s_For

    def _s_While(self, node: ast.While) -> None:
        self.eval(node.test)
        self.loop(node.body)
        self.run(node.orelse)

    def _s_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.eval(item.context_expr)
            if item.optional_vars is not None:
                self.assign(item.optional_vars, _NOTHING)
        self.run(node.body)

    _s_AsyncWith = _s_With

    def _s_Try(self, node: ast.Try) -> None:
        before = dict(self.env)
        self.run(node.body)
        after_body = self.env
        # An exception may come at any point of the body: handlers start from either state.
        raised = _join([before, after_body])
        ends = [self.run_from(raised, handler.body) for handler in node.handlers]
        self.run_from(after_body, node.orelse)
        self.env = _join([self.env, *ends])
        self.run(node.finalbody)

    _s_TryStar = _s_Try

    def _s_Match(self, node: ast.Match) -> None:
        self.eval(node.subject)
        for case in node.cases:
            self.eval(case.guard)
        self.branches([case.body for case in node.cases] + [[]])

    def run_from(self, env: _Env, body: Sequence[ast.stmt]) -> _Env:
        self.env = dict(env)
        self.run(body)
        return self.env

    def branches(self, bodies: Sequence[Sequence[ast.stmt]]) -> None:
        start = self.env
        self.env = _join([self.run_from(start, body) for body in bodies])

    def loop(self, body: Sequence[ast.stmt]) -> None:
        """Run the body until the names it binds stop changing (a loop may run 0..n times)."""
        for _ in range(_LOOP_PASSES):
            before = self.env
            self.env = _join([before, self.run_from(before, body)])
            if self.env == before:
                return

    def assign(self, target: ast.expr, values: _Values) -> None:
        if isinstance(target, ast.Name):
            self.env[target.id] = values
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:  # tuple contents are not tracked
                self.assign(element, _NOTHING)
        elif isinstance(target, ast.Starred):
            self.assign(target.value, _NOTHING)
        else:  # obj.attr = ... / obj[key] = ...
            self.visit_fields(target)
            self.escape(values, target, f"stored in {ast.unparse(target)}")

    # -- expressions --------------------------------------------------------------------------

    def eval(self, node: ast.expr | None) -> _Values:
        if node is None:
            return _NOTHING
        handler = getattr(self, f"_e_{type(node).__name__}", None)
        if handler is None:  # constants, operators, comparisons, f-strings: plain values
            self.visit_fields(node)
            return _NOTHING
        result: _Values = handler(node)
        return result

    def _e_Name(self, node: ast.Name) -> _Values:
        if node.id in self.env:
            return self.env[node.id]
        return self.analyzer.global_name(self.source.name, node.id)

    def _e_Attribute(self, node: ast.Attribute) -> _Values:
        bases = self.eval(node.value)
        return frozenset(v for base in bases for v in self.analyzer.attribute(base, node.attr))

    def _e_Await(self, node: ast.Await) -> _Values:
        values = self.eval(node.value)
        for query in _queries(values):
            self.read(query)  # `await q` collects
        return frozenset(v for v in values if not isinstance(v, _Query))

    def _e_BoolOp(self, node: ast.BoolOp) -> _Values:
        return frozenset().union(*(self.eval(value) for value in node.values))

    def _e_IfExp(self, node: ast.IfExp) -> _Values:
        self.eval(node.test)
        return self.eval(node.body) | self.eval(node.orelse)

    def _e_NamedExpr(self, node: ast.NamedExpr) -> _Values:
        values = self.eval(node.value)
        self.assign(node.target, values)
        return values

    def _e_Starred(self, node: ast.Starred) -> _Values:
        return self.eval(node.value)

    def _e_Subscript(self, node: ast.Subscript) -> _Values:
        self.eval(node.value)
        self.eval(node.slice)
        return _NOTHING

    def _e_Lambda(self, node: ast.Lambda) -> _Values:
        with self.scope(_parameters(node)):
            self.escape(self.eval(node.body), node, "returned by a lambda")
        return _NOTHING

    def _e_Tuple(self, node: ast.Tuple | ast.List | ast.Set) -> _Values:
        for element in node.elts:
            self.escape(self.eval(element), element, "put in a container")
        return _NOTHING

    _e_List = _e_Set = _e_Tuple

    def _e_Dict(self, node: ast.Dict) -> _Values:
        for element in [*node.keys, *node.values]:
            self.escape(self.eval(element), node, "put in a container")
        return _NOTHING

    def _e_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> _Values:
        return self.comprehension(node.generators, [node.elt])

    _e_SetComp = _e_GeneratorExp = _e_ListComp

    def _e_DictComp(self, node: ast.DictComp) -> _Values:
        return self.comprehension(node.generators, [node.key, node.value])

    def _e_Yield(self, node: ast.Yield | ast.YieldFrom) -> _Values:
        self.escape(self.eval(node.value), node, "yielded")
        return _NOTHING

    _e_YieldFrom = _e_Yield

    def comprehension(self, generators: list[ast.comprehension], parts: list[ast.expr]) -> _Values:
        names = [n.id for g in generators for n in ast.walk(g.target) if isinstance(n, ast.Name)]
        with self.scope(names):
            for generator in generators:
                self.iterate(self.eval(generator.iter))
                for condition in generator.ifs:
                    self.eval(condition)
            for part in parts:
                self.escape(self.eval(part), part, "put in a container")
        return _NOTHING

    @contextlib.contextmanager
    def scope(self, names: Iterable[str]) -> Iterator[None]:
        """Names bound only inside a lambda or comprehension; outer bindings come back after."""
        missing = object()
        saved = {name: self.env.get(name, missing) for name in names}
        self.env.update({name: _NOTHING for name in saved})
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is missing:
                    self.env.pop(name, None)
                else:
                    self.env[name] = value  # type: ignore[assignment]

    def iterate(self, values: _Values) -> None:
        for query in _queries(values):
            self.read(query)  # `async for doc in q` runs the query

    # -- calls --------------------------------------------------------------------------------

    def _e_Call(self, node: ast.Call) -> _Values:
        callee = self.eval(node.func)
        arguments = _Arguments(
            [self.eval(arg) for arg in node.args],
            [(kw.arg, self.eval(kw.value)) for kw in node.keywords],
            next((i for i, arg in enumerate(node.args) if isinstance(arg, ast.Starred)), None),
        )
        results: set[_Value] = set()
        followed = False
        for target in callee:
            outcome = self.call(target, arguments, node)
            if outcome is not None:
                followed = True
                results |= outcome
        if not followed and not self.inspects_only(node.func):
            for values in arguments.all():
                self.escape(values, node, f"handed to {ast.unparse(node.func)}(), not project code")
        return frozenset(results)

    def call(self, target: _Value, arguments: _Arguments, node: ast.Call) -> _Values | None:
        """The values a call of `target` returns; None when `target` is not callable to us."""
        if isinstance(target, _Method):
            return self.call_method(target, node)
        if isinstance(target, _Func):
            fn_node = self.analyzer.definition(target)
            return self.call_function(fn_node, target.module, arguments, node, target)
        if isinstance(target, _Closure):
            return self.call_function(target.node, target.module, arguments, node, target)
        return None

    def call_function(
        self,
        fn_node: _FunctionNode,
        module: str,
        arguments: _Arguments,
        node: ast.Call,
        target: _Func | _Closure,
    ) -> _Values:
        decorator = self.analyzer.opaque_decorator(module, fn_node)
        if decorator is not None:
            for values in arguments.all():
                self.escape(values, node, f"handed to @{decorator}-decorated {fn_node.name}()")
            return _NOTHING
        env = self.bind(fn_node, arguments, node)
        if isinstance(target, _Func):
            summary = self.analyzer.summarize(target, env)
            self.effects.absorb(summary.effects, self.analyzer.label(target))
            return summary.returns
        return self.call_closure(target, env)

    def call_closure(self, closure: _Closure, env: _Env) -> _Values:
        if closure in self.analyzer.active:
            return _NOTHING
        self.analyzer.active.add(closure)
        try:
            summary = self.analyzer.interpret(closure.node, closure.module, closure.env | env)
        finally:
            self.analyzer.active.discard(closure)
        self.effects.absorb(summary.effects, closure.node.name)
        return summary.returns

    def bind(self, fn_node: _FunctionNode, arguments: _Arguments, node: ast.Call) -> _Env:
        """Parameters of `fn_node` bound to the call's argument values; arguments that land in
        *args/**kwargs (or come from them) cannot be tracked further and escape."""
        env: _Env = {name: _NOTHING for name in _parameters(fn_node)}
        positional = [a.arg for a in (*fn_node.args.posonlyargs, *fn_node.args.args)]
        bound = arguments.positional[: arguments.star_at]
        for name, values in zip(positional, bound, strict=False):
            env[name] = values
        spill = [*bound[len(positional) :], *arguments.positional[len(bound) :]]
        keywords = {*positional, *(a.arg for a in fn_node.args.kwonlyargs)}
        for keyword, values in arguments.keywords:
            if keyword is not None and keyword in keywords:
                env[keyword] = values
            else:
                spill.append(values)
        for values in spill:
            self.escape(values, node, f"passed to {fn_node.name}() through *args/**kwargs")
        return env

    def call_method(self, method: _Method, node: ast.Call) -> _Values:
        owner, name = method.owner, method.name
        if isinstance(owner, _Query):
            return self.query_step(owner, name, node)
        if owner is _Role.AUTH and name == "get_user_identity":
            _add(self.effects.auth_checks, Finding(self.at(node), "ctx.auth.get_user_identity()"))
        elif owner is _Role.DB:
            return self.db_call(name, node)
        return _NOTHING

    def db_call(self, name: str, node: ast.Call) -> _Values:
        if name == "get":
            self.effects.reads += 1  # by_id
        elif name == "query":
            return frozenset({_Query(self.at(node), _literal_table(node))})
        elif name not in _DB_WRITES:
            message = f"ctx.db.{name}() is not a database method the check knows"
            _add(self.effects.index_unknowns, Finding(self.at(node), message))
        return _NOTHING

    def query_step(self, query: _Query, name: str, node: ast.Call) -> _Values:
        if name == "with_index":
            return frozenset({replace(query, scan=_Scan.INDEXED)})
        if name == "full_table_scan":
            return frozenset({replace(query, scan=_Scan.FULL)})
        if name == "filter":
            return frozenset({replace(query, filtered=True)})
        if name == "order":
            return frozenset({query})
        self.read(query)  # collect/take/first/unique/paginate (or anything else: it runs)
        return _NOTHING

    def read(self, query: _Query, how: str = "") -> None:
        if query.scan is _Scan.INDEXED:
            self.effects.reads += 1
        else:
            _add(self.effects.scans, Finding(query.origin, query.describe() + how))

    def inspects_only(self, func: ast.expr) -> bool:
        if not isinstance(func, ast.Name) or func.id not in _INSPECTING_BUILTINS:
            return False
        return func.id not in self.env and func.id not in self.source.bindings

    def escape(self, values: _Values, node: ast.AST, how: str) -> None:
        """`values` leave what the analysis follows: unindexed queries count as scans, and ctx,
        ctx.db, ctx.auth or closures make the columns they could affect unknown."""
        for value in values:
            owner = value.owner if isinstance(value, _Method) else value
            if isinstance(value, _Method) and value.owner is _Role.DB and value.name != "query":
                continue  # ctx.db.get / writes as callbacks read by id or not at all
            if isinstance(owner, _Query):
                if owner.scan is not _Scan.INDEXED:
                    self.read(owner, f", {how} at line {self.at(node).line}")
                continue
            self.unknown(owner, node, how)

    def unknown(self, value: _Value, node: ast.AST, how: str) -> None:
        if isinstance(value, _Closure):
            what = f"local function {value.node.name}()"
        elif isinstance(value, _Role):
            what = value.value
        else:
            return  # project functions and modules carry no ctx
        finding = Finding(self.at(node), f"{what} {how}; not followed")
        if value in (_Role.CTX, _Role.DB) or isinstance(value, _Closure):
            _add(self.effects.index_unknowns, finding)
        if value in (_Role.CTX, _Role.AUTH) or isinstance(value, _Closure):
            _add(self.effects.auth_unknowns, finding)


@dataclass(frozen=True, slots=True)
class _Arguments:
    """A call's evaluated arguments; `star_at` is the index of the first `*args` (if any)."""

    positional: list[_Values]
    keywords: list[tuple[str | None, _Values]]
    star_at: int | None

    def all(self) -> list[_Values]:
        return [*self.positional, *(values for _, values in self.keywords)]


def _parallel(target: ast.expr, value: ast.expr) -> list[tuple[ast.expr, ast.expr]] | None:
    """`a, b = x, y`: the pairs, so each name gets its own value."""
    if not isinstance(target, ast.Tuple | ast.List) or not isinstance(value, ast.Tuple | ast.List):
        return None
    elements = [*target.elts, *value.elts]
    if len(target.elts) != len(value.elts) or any(isinstance(e, ast.Starred) for e in elements):
        return None
    return list(zip(target.elts, value.elts, strict=True))


def _join(envs: Sequence[_Env]) -> _Env:
    joined: _Env = {}
    for env in envs:
        for name, values in env.items():
            joined[name] = joined.get(name, _NOTHING) | values
    return joined


def _queries(values: _Values) -> list[_Query]:
    return [value for value in values if isinstance(value, _Query)]


def _literal_table(node: ast.Call) -> str | None:
    first = node.args[0] if node.args else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None
