from __future__ import annotations

import pytest

from reactive.errors import SchemaError, ValidationError
from reactive.ids import new_id
from reactive.schema import (
    MAX_INDEX_FIELDS,
    MAX_INDEXES_PER_TABLE,
    IndexSpec,
    Schema,
    TableDefinition,
    define_schema,
    define_table,
    get_field,
)
from reactive.validators import v
from reactive.values import UNDEFINED


class Tables:
    def __init__(self, numbers: dict[str, int]) -> None:
        self.numbers = numbers

    def table_number(self, name: str) -> int | None:
        return self.numbers.get(name)


def tasks_schema(**flags: bool) -> Schema:
    return define_schema(
        {
            "tasks": define_table(
                {
                    "title": v.string(),
                    "status": v.union(v.literal("todo"), v.literal("done")),
                    "owner": v.optional(v.id("users")),
                    "settings": v.optional(v.object({"isPublic": v.boolean()})),
                }
            ).index("by_status", ["status"]),
            "users": define_table({"name": v.string()}),
        },
        **flags,
    )


def doc(**fields: object) -> dict[str, object]:
    return {"_id": new_id(1), "_creationTime": 1700000000000.5, **fields}


# --- define_table and indexes --------------------------------------------------------------


def test_define_table_from_dict_or_object_validator() -> None:
    fields = {"a": v.string()}
    assert define_table(fields).validator == v.object(fields)
    assert define_table(v.object(fields)).validator == v.object(fields)


def test_define_table_accepts_union_of_objects_and_any() -> None:
    define_table(v.union(v.object({"a": v.string()}), v.object({"b": v.float64()})))
    define_table(v.any())


@pytest.mark.parametrize(
    "fields", [v.string(), v.array(v.any()), v.union(v.object({}), v.null()), "x", None]
)
def test_define_table_rejects_non_object_documents(fields: object) -> None:
    with pytest.raises(SchemaError, match="define_table"):
        define_table(fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["_id", "_creationTime", "_private"])
def test_define_table_rejects_underscore_fields(name: str) -> None:
    with pytest.raises(SchemaError, match=f'field "{name}".*reserved for system fields'):
        define_table({name: v.string()})


def test_index_returns_new_definition_and_chains() -> None:
    base = define_table({"a": v.string(), "b": v.float64()})
    indexed = base.index("by_a", ["a"]).index("by_b_a", ["b", "a"])
    assert base.indexes == ()
    assert indexed.indexes == (IndexSpec("by_a", ("a",)), IndexSpec("by_b_a", ("b", "a")))


def test_all_indexes_lists_system_indexes_first() -> None:
    table = define_table({"a": v.string()}).index("by_a", ["a"])
    assert table.all_indexes() == [
        IndexSpec("by_id", ("_id",)),
        IndexSpec("by_creation_time", ("_creationTime",)),
        IndexSpec("by_a", ("a",)),
    ]
    assert table.get_index("by_creation_time") == IndexSpec("by_creation_time", ("_creationTime",))
    assert table.get_index("by_a") == IndexSpec("by_a", ("a",))
    assert table.get_index("nope") is None


def test_key_fields_end_with_creation_time_and_id() -> None:
    table = define_table({"a": v.string(), "b": v.string()}).index("by_a_b", ["a", "b"])
    keys = {spec.name: spec.key_fields for spec in table.all_indexes()}
    assert keys == {
        "by_id": ("_id",),
        "by_creation_time": ("_creationTime", "_id"),
        "by_a_b": ("a", "b", "_creationTime", "_id"),
    }
    assert [spec.is_system for spec in table.all_indexes()] == [True, True, False]


def test_dotted_index_fields_through_nested_objects() -> None:
    table = define_table(
        {"settings": v.optional(v.object({"theme": v.object({"color": v.string()})}))}
    )
    spec = table.index("by_color", ["settings.theme.color"]).indexes[0]
    assert spec.fields == ("settings.theme.color",)
    table.index("by_theme", ["settings.theme"])


def test_index_field_through_union_members() -> None:
    table = define_table(
        {
            "pet": v.union(
                v.object({"kind": v.literal("cat"), "lives": v.float64()}),
                v.object({"kind": v.literal("dog"), "name": v.string()}),
                v.null(),
            )
        }
    )
    table.index("by_kind", ["pet.kind"])
    table.index("by_lives", ["pet.lives"])
    with pytest.raises(SchemaError, match=r'field "pet\.age" does not exist'):
        table.index("by_age", ["pet.age"])


def test_index_field_on_union_table() -> None:
    table = define_table(v.union(v.object({"a": v.string()}), v.object({"a": v.float64()})))
    table.index("by_a", ["a"])


def test_index_field_below_any_is_accepted() -> None:
    define_table({"data": v.any()}).index("by_data_x", ["data.x.y"])
    define_table(v.any()).index("by_anything", ["whatever"])


@pytest.mark.parametrize(
    ("name", "fields", "message"),
    [
        ("by_a", ["missing"], 'Index "by_a": field "missing" does not exist'),
        ("by_a", ["a.b"], 'field "a.b" does not exist'),
        ("by_a", [], "must not be empty"),
        ("by_a", "a", r'did you mean \["a"\]'),
        ("by_a", ["a", "a"], 'lists field "a" twice'),
        ("by_a", ["_id"], "implicitly ends with _creationTime, _id"),
        ("by_a", ["a", "_creationTime"], "implicitly ends with _creationTime, _id"),
        ("by_a", ["a."], "is not a field path"),
        ("by_a", [".a"], "is not a field path"),
        ("by_a", [3], "is not a field path"),
        ("by_id", ["a"], "reserved"),
        ("by_creation_time", ["a"], "reserved"),
        ("_by_a", ["a"], "Invalid index name"),
        ("by a", ["a"], "Invalid index name"),
        ("1st", ["a"], "Invalid index name"),
        ("", ["a"], "Invalid index name"),
        ("x" * 65, ["a"], "Invalid index name"),
    ],
)
def test_index_definition_errors(name: str, fields: list[str], message: str) -> None:
    table = define_table({"a": v.string(), "obj": v.object({"b": v.string()})})
    with pytest.raises(SchemaError, match=message):
        table.index(name, fields)


def test_index_name_must_be_unique() -> None:
    table = define_table({"a": v.string()}).index("by_a", ["a"])
    with pytest.raises(SchemaError, match='"by_a" is defined twice'):
        table.index("by_a", ["a"])


def test_index_field_limit() -> None:
    fields = {f"f{i}": v.string() for i in range(MAX_INDEX_FIELDS + 1)}
    table = define_table(fields)
    table.index("most", list(fields)[:MAX_INDEX_FIELDS])
    with pytest.raises(SchemaError, match=f"the limit is {MAX_INDEX_FIELDS}"):
        table.index("too_many", list(fields))


def test_index_count_limit() -> None:
    table = define_table({"a": v.string()})
    for i in range(MAX_INDEXES_PER_TABLE):
        table = table.index(f"i{i}", ["a"])
    with pytest.raises(SchemaError, match=f"at most {MAX_INDEXES_PER_TABLE} indexes"):
        table.index("one_more", ["a"])


# --- get_field -----------------------------------------------------------------------------


def test_get_field_reads_dotted_paths() -> None:
    document = {"a": 1, "settings": {"theme": {"color": "red"}, "n": None}, "list": [1]}
    assert get_field(document, "a") == 1
    assert get_field(document, "settings.theme.color") == "red"
    assert get_field(document, "settings.n") is None
    assert get_field(document, "settings.theme") == {"color": "red"}


def test_get_field_missing_or_through_non_object_is_undefined() -> None:
    document = {"a": 1, "s": "text", "list": [{"x": 1}], "n": None}
    for path in ["b", "a.b", "s.length", "list.x", "n.x", "list.0"]:
        assert get_field(document, path) is UNDEFINED, path


# --- define_schema and validate_document ---------------------------------------------------


def test_define_schema_exposes_tables() -> None:
    schema = tasks_schema()
    assert list(schema.tables) == ["tasks", "users"]
    tasks = schema.table("tasks")
    assert isinstance(tasks, TableDefinition)
    assert tasks.get_index("by_status") == IndexSpec("by_status", ("status",))
    assert schema.table("missing") is None
    assert schema.schema_validation
    assert schema.strict_table_name_types


@pytest.mark.parametrize("name", ["", "_storage", "1tasks", "my-table", "a b", "t" * 65, 5])
def test_define_schema_rejects_bad_table_names(name: object) -> None:
    with pytest.raises(SchemaError, match="Invalid table name"):
        define_schema({name: define_table({"a": v.string()})})  # type: ignore[dict-item]


def test_define_schema_accepts_long_but_legal_table_name() -> None:
    define_schema({"t" * 64: define_table({}), "Tasks_2": define_table({})})


def test_define_schema_requires_table_definitions() -> None:
    with pytest.raises(SchemaError, match='Table "tasks" must be defined with define_table'):
        define_schema({"tasks": {"a": v.string()}})  # type: ignore[dict-item]
    with pytest.raises(SchemaError, match="expects a dict"):
        define_schema([("tasks", define_table({}))])  # type: ignore[arg-type]


def test_validate_document_accepts_matching_documents() -> None:
    schema = tasks_schema()
    schema.validate_document("tasks", doc(title="t", status="todo"))
    schema.validate_document(
        "tasks", doc(title="t", status="done", owner=new_id(2), settings={"isPublic": True})
    )
    schema.validate_document("tasks", {"title": "no system fields yet", "status": "todo"})


def test_validate_document_names_table_path_value_and_validator() -> None:
    with pytest.raises(ValidationError) as info:
        tasks_schema().validate_document("tasks", doc(title="t", status="doing"))
    assert str(info.value) == (
        'Document in table "tasks" does not match the schema: at path .status got "doing" '
        '(string), expected v.union(v.literal("todo"), v.literal("done"))'
    )


def test_validate_document_nested_path() -> None:
    document = doc(title="t", status="todo", settings={"isPublic": "yes"})
    with pytest.raises(ValidationError, match=r"at path \.settings\.isPublic got \"yes\""):
        tasks_schema().validate_document("tasks", document)


def test_validate_document_missing_and_extra_fields() -> None:
    schema = tasks_schema()
    with pytest.raises(ValidationError, match=r'at path \.title missing required field "title"'):
        schema.validate_document("tasks", doc(status="todo"))
    with pytest.raises(ValidationError, match=r'at path \.color unexpected field "color"'):
        schema.validate_document("tasks", doc(title="t", status="todo", color="red"))


def test_validate_document_checks_system_field_types() -> None:
    schema = tasks_schema()
    with pytest.raises(ValidationError, match=r"at path \._id got 5 \(int64\)"):
        schema.validate_document("tasks", {"_id": 5, "title": "t", "status": "todo"})
    with pytest.raises(ValidationError, match=r"at path \._creationTime got 17 \(int64\)"):
        schema.validate_document("tasks", {"_creationTime": 17, "title": "t", "status": "todo"})


def test_validate_document_checks_id_tables_with_resolver() -> None:
    schema = tasks_schema()
    ctx = Tables({"tasks": 1, "users": 2})
    schema.validate_document("tasks", doc(title="t", status="todo", owner=new_id(2)), ctx)
    with pytest.raises(ValidationError, match='expected an id of table "users"'):
        schema.validate_document("tasks", doc(title="t", status="todo", owner=new_id(1)), ctx)


def test_validate_document_rejects_non_objects() -> None:
    with pytest.raises(ValidationError, match=r'table "tasks".*expected an object'):
        tasks_schema().validate_document("tasks", ["not", "a", "doc"])


def test_unknown_tables_are_not_checked() -> None:
    tasks_schema().validate_document("notes", {"anything": [1, 2, 3]})


def test_schema_validation_off_skips_checks() -> None:
    schema = tasks_schema(schema_validation=False)
    schema.validate_document("tasks", doc(title=3, status="nope"))


def test_union_table_document_messages() -> None:
    schema = define_schema(
        {
            "events": define_table(
                v.union(
                    v.object({"type": v.literal("click"), "x": v.float64()}),
                    v.object({"type": v.literal("key"), "key": v.string()}),
                )
            )
        }
    )
    schema.validate_document("events", doc(type="key", key="a"))
    with pytest.raises(ValidationError, match=r"at path \.key got 1\.0 \(float64\)"):
        schema.validate_document("events", doc(type="key", key=1.0))


# --- fingerprint and to_json ---------------------------------------------------------------


def test_fingerprint_is_stable() -> None:
    assert tasks_schema().fingerprint() == tasks_schema().fingerprint()
    assert len(tasks_schema().fingerprint()) == 64


def test_fingerprint_ignores_definition_order() -> None:
    a = define_table({"x": v.string(), "y": v.string()})
    first = define_schema({"a": a.index("i1", ["x"]).index("i2", ["y"]), "b": define_table({})})
    second = define_schema({"b": define_table({}), "a": a.index("i2", ["y"]).index("i1", ["x"])})
    assert first.fingerprint() == second.fingerprint()


def test_fingerprint_changes_when_an_index_is_added() -> None:
    table = define_table({"a": v.string(), "b": v.string()})
    before = define_schema({"t": table}).fingerprint()
    after = define_schema({"t": table.index("by_a", ["a"])}).fingerprint()
    other_fields = define_schema({"t": table.index("by_a", ["b"])}).fingerprint()
    assert len({before, after, other_fields}) == 3


def test_fingerprint_changes_with_validators_and_flags() -> None:
    base = define_schema({"t": define_table({"a": v.string()})}).fingerprint()
    optional = define_schema({"t": define_table({"a": v.optional(v.string())})}).fingerprint()
    literal = define_schema({"t": define_table({"a": v.literal(1)})}).fingerprint()
    literal_float = define_schema({"t": define_table({"a": v.literal(1.0)})}).fingerprint()
    unchecked = define_schema(
        {"t": define_table({"a": v.string()})}, schema_validation=False
    ).fingerprint()
    assert len({base, optional, literal, literal_float, unchecked}) == 5


def test_to_json_describes_tables_and_indexes() -> None:
    described = tasks_schema().to_json()
    assert described["schemaValidation"] is True
    assert described["strictTableNameTypes"] is True
    tasks, users = described["tables"]  # type: ignore[misc]
    assert tasks["tableName"] == "tasks"
    assert tasks["indexes"] == [{"indexDescriptor": "by_status", "fields": ["status"]}]
    assert tasks["documentType"]["value"]["owner"] == {
        "fieldType": {"type": "id", "tableName": "users"},
        "optional": True,
    }
    assert users == {
        "tableName": "users",
        "indexes": [],
        "searchIndexes": [],
        "vectorIndexes": [],
        "documentType": {
            "type": "object",
            "value": {"name": {"fieldType": {"type": "string"}, "optional": False}},
        },
    }
