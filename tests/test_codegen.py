"""Tests of reactive.tools.codegen: type rendering per validator kind, the generated files, and the
generated code checked by the real tools: `tsc` with the official npm client (tests/codegen,
`npm ci --prefix tests/codegen`), `node` for api.js, mypy for api.py. Without node or the npm
package those tests skip, except under CI (env CI non-empty), where they fail.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest

from reactive.errors import SchemaError
from reactive.functions import FunctionDef, FunctionKind, Registry
from reactive.references import FunctionReference, reference_path
from reactive.schema import define_schema, define_table
from reactive.tools.codegen import HEADER, generate, render, ts_type, write_files
from reactive.validators import Validator, pagination_opts_validator, v
from tests.node_tools import find_node, require_file, unavailable

TESTS = Path(__file__).parent
CHAT = TESTS / "projects" / "chat"
CODEGEN = TESTS / "codegen"
KINDS = CODEGEN / "kinds"
SEED = TESTS.parent
TOOL_TIMEOUT_S = 180
TS_ERROR = re.compile(r"^(?P<file>[^\s(]+)\((?P<line>\d+),\d+\): error (?P<code>TS\d+):", re.M)
EXPECTED_TS_ERROR = re.compile(r"// expect-error (TS\d+)")
#: mypy as CI runs it; errors inside reactive itself are not this test's business.
MYPY = (sys.executable, "-m", "mypy", "--follow-imports=silent", "--ignore-missing-imports")


def _unavailable(reason: str) -> NoReturn:
    unavailable(reason, "the codegen checks")


async def _handler(ctx: Any, args: dict[str, Any]) -> None:
    return None


def _registry(*entries: tuple[str, FunctionDef]) -> Registry:
    registry = Registry()
    for path, definition in entries:
        registry.add(path, definition)
    return registry


def _fn(
    kind: FunctionKind = FunctionKind.QUERY,
    *,
    internal: bool = False,
    args: Validator | None = None,
    returns: Validator | None = None,
) -> FunctionDef:
    return FunctionDef(kind, _handler, internal, args, returns)


# -- validators -> TypeScript ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("validator", "expected"),
    [
        (v.string(), "string"),
        (v.float64(), "number"),
        (v.number(), "number"),
        (v.int64(), "bigint"),
        (v.boolean(), "boolean"),
        (v.null(), "null"),
        (v.bytes(), "ArrayBuffer"),
        (v.any(), "any"),
        (v.id("users"), 'Id<"users">'),
        (v.literal("a"), '"a"'),
        (v.literal('say "hi"'), '"say \\"hi\\""'),
        (v.literal(True), "true"),
        (v.literal(False), "false"),
        (v.literal(7), "7n"),
        (v.literal(-3), "-3n"),
        (v.literal(2.5), "2.5"),
        (v.literal(3.0), "3"),
        (v.literal(-0.0), "0"),
        (v.literal(1e300), "1e+300"),
        (v.literal(math.inf), "number"),
        (v.union(v.string(), v.null()), "string | null"),
        (v.optional(v.string()), "string | undefined"),
        (v.array(v.string()), "string[]"),
        (v.array(v.union(v.string(), v.int64())), "(string | bigint)[]"),
        (v.array(v.literal(-1.5)), "(-1.5)[]"),
        (v.array(v.array(v.boolean())), "boolean[][]"),
        (v.object({"a": v.string(), "b": v.optional(v.float64())}), "{ a: string; b?: number }"),
        (v.object({"b-c": v.string(), "a$": v.null()}), '{ "b-c": string; a$: null }'),
        (v.object({}), "Record<string, never>"),
        (v.record(v.string(), v.float64()), "Record<string, number>"),
        (v.record(v.id("users"), v.array(v.int64())), 'Record<Id<"users">, bigint[]>'),
        (v.record(v.union(v.literal("x"), v.literal("y")), v.any()), 'Record<"x" | "y", any>'),
        (pagination_opts_validator, "PaginationOptions"),
    ],
)
def test_ts_type_of_every_validator_kind(validator: Validator, expected: str) -> None:
    assert ts_type(validator) == expected


def test_ts_type_keeps_object_fields_in_definition_order() -> None:
    validator = v.object({"z": v.string(), "a": v.object({"y": v.null(), "b": v.int64()})})
    assert ts_type(validator) == "{ z: string; a: { y: null; b: bigint } }"


def test_ts_type_of_an_id_of_a_table_the_schema_lacks_is_a_generic_id() -> None:
    known = frozenset({"users", "_storage"})
    assert ts_type(v.id("users"), known_tables=known) == 'Id<"users">'
    assert ts_type(v.id("_storage"), known_tables=known) == 'Id<"_storage">'
    assert ts_type(v.array(v.id("ghosts")), known_tables=known) == 'GenericId<"ghosts">[]'


# -- api.d.ts / api.js ---------------------------------------------------------------------


def test_api_nests_directories_and_separates_internal_functions() -> None:
    registry = _registry(
        ("actions/stripe:createCheckoutSession", _fn(FunctionKind.ACTION, args=v.object({}))),
        ("messages:list", _fn(args=v.object({"channel": v.string()}))),
        ("messages:secret", _fn(FunctionKind.MUTATION, internal=True, returns=v.int64())),
    )
    dts = render(registry, None)["api.d.ts"]
    assert (
        "export declare const api: {\n"
        "  actions: {\n"
        "    stripe: {\n"
        '      createCheckoutSession: FunctionReference<"action", "public", '
        "Record<string, never>, any>;\n"
        "    };\n"
        "  };\n"
        "  messages: {\n"
        '    list: FunctionReference<"query", "public", { channel: string }, any>;\n'
        "  };\n"
        "};\n"
    ) in dts
    assert (
        "export declare const internal: {\n"
        "  messages: {\n"
        '    secret: FunctionReference<"mutation", "internal", Record<string, any>, bigint>;\n'
        "  };\n"
        "};\n"
    ) in dts


def test_api_arguments_without_validator_empty_or_impossible() -> None:
    registry = _registry(
        ("m:any", _fn()),
        ("m:empty", _fn(args=v.object({}))),
        ("m:scalar", _fn(args=v.string())),
        ("m:union", _fn(args=v.union(v.object({"a": v.string()}), v.object({"b": v.null()})))),
    )
    dts = render(registry, None)["api.d.ts"]
    assert 'any: FunctionReference<"query", "public", Record<string, any>, any>;' in dts
    assert 'empty: FunctionReference<"query", "public", Record<string, never>, any>;' in dts
    # Arguments are always an object: a function that wants a string can never be called.
    assert 'scalar: FunctionReference<"query", "public", never, any>;' in dts
    assert '"public", { a: string } | { b: null }, any>;' in dts


def test_api_imports_only_what_it_uses() -> None:
    plain = render(_registry(("m:f", _fn())), None)["api.d.ts"]
    assert 'import type { FunctionReference } from "convex/server";' in plain
    assert "dataModel" not in plain and "GenericId" not in plain
    schema = define_schema({"users": define_table({"name": v.string()})})
    registry = _registry(
        ("m:f", _fn(args=v.object({"u": v.id("users"), "g": v.id("ghosts")}))),
        ("m:p", _fn(args=v.object({"paginationOpts": pagination_opts_validator}))),
    )
    dts = render(registry, schema)["api.d.ts"]
    assert 'import type { FunctionReference, PaginationOptions } from "convex/server";' in dts
    assert 'import type { GenericId } from "convex/values";' in dts
    assert 'import type { Id } from "./dataModel.js";' in dts
    assert '{ u: Id<"users">; g: GenericId<"ghosts"> }' in dts


def test_api_has_no_namespaces_when_there_are_no_functions() -> None:
    dts = render(Registry(), None)["api.d.ts"]
    assert "export declare const api: {};\n" in dts
    assert "export declare const internal: {};\n" in dts


def test_api_js_builds_paths_at_runtime_with_any_api() -> None:
    js = render(Registry(), None)["api.js"]
    assert 'import { anyApi } from "convex/server";' in js
    assert "export const api = anyApi;\nexport const internal = anyApi;\n" in js


def test_a_function_and_a_module_with_the_same_api_name_are_refused() -> None:
    registry = _registry(("a:b", _fn()), ("a/b:c", _fn()))
    with pytest.raises(SchemaError) as info:
        render(registry, None)
    assert str(info.value) == (
        "codegen: function 'a:b' and module 'a/b' would both be api.a.b; "
        "rename the function or the module"
    )


# -- dataModel.d.ts ------------------------------------------------------------------------


def test_data_model_lists_search_and_vector_indexes_as_convex_types_them() -> None:
    schema = define_schema(
        {
            "posts": define_table({"body": v.string(), "channel": v.string(), "n": v.float64()})
            .search_index("search_body", search_field="body", filter_fields=["channel", "n"])
            .search_index("plain", search_field="body"),
            "docs": define_table(
                {"embedding": v.array(v.float64()), "kind": v.string()}
            ).vector_index(
                "by_embedding", vector_field="embedding", dimensions=3, filter_fields=["kind"]
            ),
        }
    )
    text = render(Registry(), schema)["dataModel.d.ts"]
    assert (
        "    vectorIndexes: {\n"
        '      by_embedding: { vectorField: "embedding"; dimensions: number; '
        'filterFields: "kind" };\n'
        "    };\n"
    ) in text
    assert (
        "    searchIndexes: {\n"
        '      plain: { searchField: "body"; filterFields: never };\n'
        '      search_body: { searchField: "body"; filterFields: "channel" | "n" };\n'
        "    };\n"
    ) in text


def test_data_model_documents_field_paths_and_indexes() -> None:
    schema = define_schema(
        {
            "notes": define_table(
                {
                    "title": v.string(),
                    "layout": v.optional(v.object({"x": v.float64()})),
                    "attrs": v.record(v.string(), v.string()),
                }
            ).index("by_title", ["title"]),
            "users": define_table({"name": v.string()}),
        }
    )
    text = render(Registry(), schema)["dataModel.d.ts"]
    assert (
        "  notes: {\n"
        '    document: { _id: Id<"notes">; _creationTime: number; title: string; '
        "layout?: { x: number }; attrs: Record<string, string> };\n"
        '    fieldPaths: "_creationTime" | "_id" | "attrs" | `attrs.${string}` | "layout" | '
        '"layout.x" | "title";\n'
        "    indexes: {\n"
        '      by_creation_time: ["_creationTime"];\n'
        '      by_id: ["_id"];\n'
        '      by_title: ["title", "_creationTime"];\n'
        "    };\n"
        "    searchIndexes: {};\n"
        "    vectorIndexes: {};\n"
        "  };\n"
    ) in text
    assert text.index("  notes: {") < text.index("  users: {")
    assert "  users: {\n" in text and "    searchIndexes: {};\n" in text.split("  users: {")[1]
    assert (
        "export type Doc<TableName extends TableNames> = DocumentByName<DataModel, TableName>;"
    ) in text
    assert (
        "export type Id<TableName extends TableNames | SystemTableNames> = GenericId<TableName>;"
    ) in text


def test_data_model_of_union_and_any_tables() -> None:
    schema = define_schema(
        {
            "blobs": define_table(v.any()),
            "events": define_table(
                v.union(
                    v.object({"k": v.literal("a")}), v.object({"k": v.literal("b"), "n": v.int64()})
                )
            ),
        }
    )
    text = render(Registry(), schema)["dataModel.d.ts"]
    assert "  blobs: {\n    document: any;\n    fieldPaths: string;\n" in text
    assert (
        '    document: { _id: Id<"events">; _creationTime: number; k: "a" } | '
        '{ _id: Id<"events">; _creationTime: number; k: "b"; n: bigint };\n'
        '    fieldPaths: "_creationTime" | "_id" | "k" | "n";\n'
    ) in text


def test_data_model_without_schema_or_with_lax_table_names() -> None:
    without = render(Registry(), None)["dataModel.d.ts"]
    assert "export type DataModel = AnyDataModel;" in without
    assert "export type TableNames = string;" in without
    lax = define_schema({"users": define_table({"n": v.string()})}, strict_table_name_types=False)
    text = render(_registry(("m:f", _fn(args=v.object({"g": v.id("ghosts")})))), lax)
    assert "} & AnyDataModel;\n" in text["dataModel.d.ts"]
    assert "  AnyDataModel,\n" in text["dataModel.d.ts"]
    strict = define_schema({"users": define_table({"n": v.string()})})
    assert "AnyDataModel" not in render(Registry(), strict)["dataModel.d.ts"]
    # Every table name is acceptable then, so ids of unknown tables are still `Id`.
    assert '{ g: Id<"ghosts"> }' in text["api.d.ts"]


# -- api.py --------------------------------------------------------------------------------


def _import_api_py(text: str, directory: Path) -> ModuleType:
    path = directory / "api.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"generated_api_{directory.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_py_references_have_the_paths_of_their_functions(tmp_path: Path) -> None:
    registry = _registry(
        ("actions/stripe:createCheckoutSession", _fn(FunctionKind.ACTION)),
        ("messages:list", _fn(args=v.object({"channel": v.string()}))),
        ("messages:send_internal", _fn(FunctionKind.MUTATION, internal=True)),
        ("dir/file:default", _fn()),
    )
    module = _import_api_py(render(registry, None)["api.py"], tmp_path)
    assert isinstance(module.api.messages.list, FunctionReference)
    assert module.api.messages.list.path == "messages:list"
    assert reference_path(module.api.messages.list) == "messages:list"
    stripe = module.api.actions.stripe.createCheckoutSession
    assert stripe.path == "actions/stripe:createCheckoutSession"
    assert module.api.dir.file.default.path == "dir/file:default"
    assert module.internal.messages.send_internal.path == "messages:send_internal"
    assert not hasattr(module.api.messages, "send_internal")
    assert not hasattr(module.internal.messages, "list")
    assert module.__all__ == ["api", "internal"]


def test_api_py_describes_each_function_and_skips_names_python_cannot_spell(
    tmp_path: Path,
) -> None:
    registry = _registry(
        ("import:run", _fn()),
        ("jobs:class", _fn()),
        ("jobs:ok", _fn(FunctionKind.MUTATION, args=v.object({"n": v.int64()}), returns=v.null())),
        ("my-module:f", _fn()),
        ("a_b:f", _fn()),
        ("a/b:g", _fn()),
    )
    text = render(registry, None)["api.py"]
    assert text.startswith(f"# {HEADER}\n")
    assert '    #: mutation "jobs:ok"; args { n: bigint }; returns null\n' in text
    assert "    # \"class\" is not a Python attribute name: call 'jobs:class'\n" in text
    assert "    # \"import\" is not a Python attribute name: call 'import:...'\n" in text
    module = _import_api_py(text, tmp_path)
    assert module.api.jobs.ok.path == "jobs:ok"
    # Module "a_b" and directory "a/b" need two classes despite the same underscore name.
    assert module.api.a_b.f.path == "a_b:f"
    assert module.api.a.b.g.path == "a/b:g"
    assert type(module.api.a_b).__name__ != type(module.api.a.b).__name__


# -- files on disk -------------------------------------------------------------------------


def test_every_file_starts_with_the_header_and_output_is_deterministic() -> None:
    schema = define_schema({"b": define_table({"x": v.string()}), "a": define_table({})})
    first = render(_registry(("z:f", _fn()), ("a:g", _fn())), schema)
    second = render(_registry(("a:g", _fn()), ("z:f", _fn())), schema)
    assert first == second
    assert list(first) == ["api.d.ts", "api.js", "api.py", "dataModel.d.ts"]
    for name, text in first.items():
        assert HEADER in text.splitlines()[0], name
    assert first["api.d.ts"].index("  a: {") < first["api.d.ts"].index("  z: {")


def test_generate_writes_into_the_project_and_leaves_unchanged_files_alone(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    shutil.copytree(CHAT, project, ignore=shutil.ignore_patterns("__pycache__"))
    paths = generate(project)
    target = project / "_generated"
    assert paths == [target / n for n in ("api.d.ts", "api.js", "api.py", "dataModel.d.ts")]
    assert (
        '    list: FunctionReference<"query", "public", { channel: string }, any>;'
        in (target / "api.d.ts").read_text()
    )
    long_ago = 1_000_000_000_000_000_000
    for path in paths:
        os.utime(path, ns=(long_ago, long_ago))
    (target / "api.js").write_text("stale")
    assert generate(project) == paths
    rewritten = [path.name for path in paths if path.stat().st_mtime_ns != long_ago]
    assert rewritten == ["api.js"]
    assert "anyApi" in (target / "api.js").read_text()
    elsewhere = generate(project, tmp_path / "out")
    assert [path.read_text() for path in elsewhere] == [path.read_text() for path in paths]


def test_write_files_creates_the_directory(tmp_path: Path) -> None:
    written = write_files(tmp_path / "a" / "b", {"x.d.ts": "one\n"})
    assert written == [tmp_path / "a" / "b" / "x.d.ts"]
    assert written[0].read_text() == "one\n"


# -- the generated code under the real tools -----------------------------------------------


def _node() -> str:
    executable = find_node("the codegen checks")
    require_file(
        CODEGEN / "node_modules" / "typescript" / "bin" / "tsc",
        "npm ci --prefix tests/codegen",
        "the codegen checks",
    )
    return executable


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temp dir with the npm packages, the .ts fixtures and chat's and kinds' generated code."""
    _node()
    work = tmp_path_factory.mktemp("codegen-ts")
    (work / "node_modules").symlink_to(CODEGEN / "node_modules", target_is_directory=True)
    (work / "package.json").write_text('{"type": "module"}\n')
    for fixture in sorted(CODEGEN.glob("*.ts")):
        shutil.copy(fixture, work / fixture.name)
    generate(CHAT, work / "chat")
    generate(KINDS, work / "kinds")
    return work


def _tsc_errors(work: Path, files: list[str]) -> tuple[list[tuple[str, int, str]], str]:
    """(file, line, code) of every error `tsc --noEmit` reports for `files`, and its output."""
    config = json.loads((CODEGEN / "tsconfig.json").read_text())
    config["files"] = files
    (work / "tsconfig.json").write_text(json.dumps(config, indent=2))
    tsc = work / "node_modules" / "typescript" / "bin" / "tsc"
    result = subprocess.run(
        [_node(), str(tsc), "-p", "tsconfig.json", "--pretty", "false"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
    )
    output = result.stdout + result.stderr
    errors = [(m["file"], int(m["line"]), m["code"]) for m in TS_ERROR.finditer(output)]
    assert (result.returncode == 0) == (not errors), output
    return errors, output


def _expected_errors(work: Path, name: str) -> list[tuple[str, int, str]]:
    lines = (work / name).read_text().splitlines()
    return [
        (name, number, match[1])
        for number, line in enumerate(lines, start=1)
        if (match := EXPECTED_TS_ERROR.search(line))
    ]


def test_tsc_accepts_good_uses_and_reports_each_mistake_in_bad_ts(workspace: Path) -> None:
    errors, output = _tsc_errors(workspace, ["good.ts", "kinds.ts", "bad.ts"])
    expected = _expected_errors(workspace, "bad.ts")
    assert len(expected) == 12
    assert errors == expected, output


def test_tsc_accepts_the_seed_app_types(workspace: Path) -> None:
    try:
        generate(SEED, workspace / "seed")
    except Exception as exc:  # the seed app is optional here; its own tests catch breakage
        pytest.skip(f"the seed app does not load: {exc!r}")
    errors, output = _tsc_errors(workspace, ["seed.ts"])
    assert errors == [], output


def test_api_js_gives_the_function_paths_at_runtime(workspace: Path) -> None:
    script = workspace / "paths.mjs"
    script.write_text(
        'import { getFunctionName } from "convex/server";\n'
        'import { api, internal } from "./kinds/api.js";\n'
        "console.log(JSON.stringify([getFunctionName(api.kinds.everything),\n"
        "  getFunctionName(api.nested.deep.run), getFunctionName(internal.kinds.secret)]));\n"
    )
    result = subprocess.run(
        [_node(), str(script)], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["kinds:everything", "nested/deep:run", "kinds:secret"]


def test_mypy_accepts_the_generated_python_api_and_rejects_unknown_names(tmp_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        _unavailable("mypy is not installed (pip install -e '.[dev]')")
    generate(CHAT, tmp_path / "_generated")
    (tmp_path / "good_use.py").write_text(
        "from _generated.api import api, internal\n"
        "from reactive import FunctionReference\n\n"
        "listing: FunctionReference = api.messages.list\n"
        "path: str = internal.messages.send_internal.path\n"
        "reveal_type(api.messages.send)\n"
    )
    (tmp_path / "bad_use.py").write_text(
        "from _generated.api import api, internal\n\n"
        "api.messages.nope\n"
        "internal.messages.list\n"
        "api.messages.list = api.messages.send\n"
    )
    result = subprocess.run(
        [*MYPY, "--cache-dir", str(tmp_path / ".mypy_cache"), "good_use.py", "bad_use.py"],
        cwd=tmp_path,
        # tmp_path first: a _generated/ of the seed app must not shadow the one under test
        env={**os.environ, "MYPYPATH": f"{tmp_path}{os.pathsep}{SEED}"},
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
    )
    output = result.stdout
    assert result.returncode == 1, output + result.stderr
    assert 'good_use.py:6: note: Revealed type is "reactive.references.FunctionReference"' in output
    assert "good_use.py:" not in output.replace("good_use.py:6: note", "")
    assert 'bad_use.py:3: error: "_Api_messages" has no attribute "nope"' in output
    assert 'bad_use.py:4: error: "_Internal_messages" has no attribute "list"' in output
    assert 'bad_use.py:5: error: Cannot assign to final attribute "list"' in output
