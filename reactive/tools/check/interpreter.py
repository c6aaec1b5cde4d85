"""The abstract interpretation behind `reactive check`: handler bodies run over `ast` with ctx,
ctx.db, ctx.auth and query builders followed through project helpers, and the verdicts that
follow from what they do. What cannot be followed is "unknown", never a pass.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, TypeAlias

from reactive.functions import AnyFunction, FunctionKind
from reactive.tools.check.report import Finding, FunctionCheck, Location, Verdict
from reactive.tools.check.source_index import (
    NOTHING,
    Func,
    FunctionNode,
    Package,
    Source,
    SourceIndex,
    import_bindings,
)

# -- verdicts ---------------------------------------------------------------------------------


def check_function(analyzer: Analyzer, path: str, fn: AnyFunction) -> FunctionCheck:
    base = FunctionCheck(path, fn.kind, fn.internal, Verdict.UNKNOWN, Verdict.UNKNOWN)
    located = analyzer.index.locate(fn.handler)
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


@dataclass(frozen=True, slots=True, eq=False)
class _Closure:
    """A function defined inside the function being analysed, with the names it can see."""

    node: FunctionNode
    module: str
    env: dict[str, frozenset[Any]]


_Value: TypeAlias = "_Role | _Query | _Method | Func | Package | _Closure"
_Values: TypeAlias = "frozenset[_Value]"
_Env: TypeAlias = "dict[str, _Values]"

_DB_WRITES = frozenset({"insert", "patch", "replace", "delete", "normalize_id"})
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


# -- the analyzer: memoised summaries across the project --------------------------------------


class Analyzer:
    """Summarises project functions per argument values; a function already being summarised
    (recursion) contributes nothing more."""

    def __init__(self, index: SourceIndex) -> None:
        self.index = index
        self.memo: dict[tuple[Any, ...], _Summary] = {}
        self.active: set[Any] = set()
        #: Functions whose (still running) summary a recursive call had to take as empty;
        #: summaries computed meanwhile lack their effects, so they are not memoised.
        self.cut: set[Func] = set()

    def run_handler(self, handler: Func) -> _Effects:
        node = self.index.definition(handler)
        params = _parameters(node)
        env: _Env = {name: NOTHING for name in params}
        if params:
            env[params[0]] = frozenset({_Role.CTX})
        return self.summarize(handler, env).effects

    def attribute(self, value: _Value, name: str) -> _Values:
        if value is _Role.CTX:
            role = {"db": _Role.DB, "auth": _Role.AUTH}.get(name)
            return frozenset({role}) if role is not None else NOTHING
        if value is _Role.DB or value is _Role.AUTH or isinstance(value, _Query):
            return frozenset({_Method(value, name)})
        if isinstance(value, Package):
            return self.index.member(value.name, name)
        return NOTHING

    # -- summaries ----------------------------------------------------------------------------

    def summarize(self, fn: Func, env: _Env) -> _Summary:
        key = (fn, tuple(sorted(env.items(), key=lambda item: item[0])))
        if key in self.memo:
            return self.memo[key]
        if fn in self.active:
            self.cut.add(fn)
            return _Summary(_Effects(), NOTHING)
        self.active.add(fn)
        try:
            summary = self.interpret(self.index.definition(fn), fn.module, env)
        finally:
            self.active.discard(fn)
            self.cut.discard(fn)  # its own effects are all in `summary` now
        if not self.cut:
            self.memo[key] = summary
        return summary

    def interpret(self, node: FunctionNode, module: str, env: _Env) -> _Summary:
        interpreter = _Interpreter(self, self.index.sources[module], env)
        interpreter.run(node.body)
        return _Summary(interpreter.effects, frozenset(interpreter.returns))


def _parameters(node: FunctionNode | ast.Lambda) -> list[str]:
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

    def __init__(self, analyzer: Analyzer, source: Source, env: _Env) -> None:
        self.analyzer = analyzer
        self.index = analyzer.index
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

    def _s_FunctionDef(self, node: FunctionNode) -> None:
        closure = _Closure(node, self.source.name, dict(self.env))
        closure.env[node.name] = frozenset({closure})
        self.env[node.name] = frozenset({closure})

    _s_AsyncFunctionDef = _s_FunctionDef

    def _s_ClassDef(self, node: ast.ClassDef) -> None:
        self.env[node.name] = NOTHING

    def _s_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for name, target in import_bindings(self.source, node).items():
            self.env[name] = self.index.imported(target)

    _s_ImportFrom = _s_Import

    def _s_If(self, node: ast.If) -> None:
        self.eval(node.test)
        self.branches([node.body, node.orelse])

    def _s_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.iterate(self.eval(node.iter))
        self.assign(node.target, NOTHING)
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
                self.assign(item.optional_vars, NOTHING)
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
                self.assign(element, NOTHING)
        elif isinstance(target, ast.Starred):
            self.assign(target.value, NOTHING)
        else:  # obj.attr = ... / obj[key] = ...
            self.visit_fields(target)
            self.escape(values, target, f"stored in {ast.unparse(target)}")

    # -- expressions --------------------------------------------------------------------------

    def eval(self, node: ast.expr | None) -> _Values:
        if node is None:
            return NOTHING
        handler = getattr(self, f"_e_{type(node).__name__}", None)
        if handler is None:  # constants, operators, comparisons, f-strings: plain values
            self.visit_fields(node)
            return NOTHING
        result: _Values = handler(node)
        return result

    def _e_Name(self, node: ast.Name) -> _Values:
        if node.id in self.env:
            return self.env[node.id]
        return self.index.global_name(self.source.name, node.id)

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
        return NOTHING

    def _e_Lambda(self, node: ast.Lambda) -> _Values:
        with self.scope(_parameters(node)):
            self.escape(self.eval(node.body), node, "returned by a lambda")
        return NOTHING

    def _e_Tuple(self, node: ast.Tuple | ast.List | ast.Set) -> _Values:
        for element in node.elts:
            self.escape(self.eval(element), element, "put in a container")
        return NOTHING

    _e_List = _e_Set = _e_Tuple

    def _e_Dict(self, node: ast.Dict) -> _Values:
        for element in [*node.keys, *node.values]:
            self.escape(self.eval(element), node, "put in a container")
        return NOTHING

    def _e_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> _Values:
        return self.comprehension(node.generators, [node.elt])

    _e_SetComp = _e_GeneratorExp = _e_ListComp

    def _e_DictComp(self, node: ast.DictComp) -> _Values:
        return self.comprehension(node.generators, [node.key, node.value])

    def _e_Yield(self, node: ast.Yield | ast.YieldFrom) -> _Values:
        self.escape(self.eval(node.value), node, "yielded")
        return NOTHING

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
        return NOTHING

    @contextlib.contextmanager
    def scope(self, names: Iterable[str]) -> Iterator[None]:
        """Names bound only inside a lambda or comprehension; outer bindings come back after."""
        missing = object()
        saved = {name: self.env.get(name, missing) for name in names}
        self.env.update({name: NOTHING for name in saved})
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
        if isinstance(target, Func):
            fn_node = self.index.definition(target)
            return self.call_function(fn_node, target.module, arguments, node, target)
        if isinstance(target, _Closure):
            return self.call_function(target.node, target.module, arguments, node, target)
        return None

    def call_function(
        self,
        fn_node: FunctionNode,
        module: str,
        arguments: _Arguments,
        node: ast.Call,
        target: Func | _Closure,
    ) -> _Values:
        decorator = self.index.opaque_decorator(module, fn_node)
        if decorator is not None:
            for values in arguments.all():
                self.escape(values, node, f"handed to @{decorator}-decorated {fn_node.name}()")
            return NOTHING
        env = self.bind(fn_node, arguments, node)
        if isinstance(target, Func):
            summary = self.analyzer.summarize(target, env)
            self.effects.absorb(summary.effects, self.index.label(target))
            return summary.returns
        return self.call_closure(target, env)

    def call_closure(self, closure: _Closure, env: _Env) -> _Values:
        if closure in self.analyzer.active:
            return NOTHING
        self.analyzer.active.add(closure)
        try:
            summary = self.analyzer.interpret(closure.node, closure.module, closure.env | env)
        finally:
            self.analyzer.active.discard(closure)
        self.effects.absorb(summary.effects, closure.node.name)
        return summary.returns

    def bind(self, fn_node: FunctionNode, arguments: _Arguments, node: ast.Call) -> _Env:
        """Parameters of `fn_node` bound to the call's argument values; arguments that land in
        *args/**kwargs (or come from them) cannot be tracked further and escape."""
        env: _Env = {name: NOTHING for name in _parameters(fn_node)}
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
        return NOTHING

    def db_call(self, name: str, node: ast.Call) -> _Values:
        if name == "get":
            self.effects.reads += 1  # by_id
        elif name == "query":
            return frozenset({_Query(self.at(node), _literal_table(node))})
        elif name not in _DB_WRITES:
            message = f"ctx.db.{name}() is not a database method the check knows"
            _add(self.effects.index_unknowns, Finding(self.at(node), message))
        return NOTHING

    def query_step(self, query: _Query, name: str, node: ast.Call) -> _Values:
        if name in ("with_index", "with_search_index"):  # a search index is an index
            return frozenset({replace(query, scan=_Scan.INDEXED)})
        if name == "full_table_scan":
            return frozenset({replace(query, scan=_Scan.FULL)})
        if name == "filter":
            return frozenset({replace(query, filtered=True)})
        if name == "order":
            return frozenset({query})
        self.read(query)  # collect/take/first/unique/paginate (or anything else: it runs)
        return NOTHING

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
            joined[name] = joined.get(name, NOTHING) | values
    return joined


def _queries(values: _Values) -> list[_Query]:
    return [value for value in values if isinstance(value, _Query)]


def _literal_table(node: ast.Call) -> str | None:
    first = node.args[0] if node.args else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None
