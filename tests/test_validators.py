from __future__ import annotations

import math

import pytest

from reactive.errors import SchemaError, ValidationError
from reactive.ids import new_id
from reactive.validators import (
    IdResolver,
    Mismatch,
    ObjectValidator,
    Validator,
    describe_value,
    pagination_opts_validator,
    v,
    validate_args,
)
from reactive.values import UNDEFINED


class Tables:
    """An IdResolver over a fixed name -> number map."""

    def __init__(self, numbers: dict[str, int]) -> None:
        self.numbers = numbers

    def table_number(self, name: str) -> int | None:
        return self.numbers.get(name)


def rejects(validator: Validator, value: object, ctx: IdResolver | None = None) -> str:
    with pytest.raises(ValidationError) as info:
        validator.check(value, ctx=ctx)
    return str(info.value)


# --- scalars -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("validator", "good", "bad"),
    [
        (v.string(), ["", "héllo"], [None, 1, b"x", ["a"]]),
        (v.float64(), [1.5, 0.0, -0.0, math.inf, math.nan], [1, True, "1", None]),
        (v.int64(), [0, -(2**63), 2**63 - 1], [1.0, True, "1", 2**63, -(2**63) - 1]),
        (v.boolean(), [True, False], [0, 1, "true", None]),
        (v.null(), [None], [0, False, "", UNDEFINED]),
        (v.bytes(), [b"", b"\x00\xff"], ["x", bytearray(b"x"), [1]]),
    ],
)
def test_primitive_accepts_and_rejects(
    validator: Validator, good: list[object], bad: list[object]
) -> None:
    for value in good:
        validator.check(value)
    for value in bad:
        assert validator.find_mismatch(value) is not None, value


def test_aliases_build_the_same_validators() -> None:
    assert v.number() == v.float64()
    assert v.bigint() == v.int64()
    assert repr(v.number()) == "v.float64()"
    assert repr(v.bigint()) == "v.int64()"


def test_float64_rejects_int_with_hint() -> None:
    message = rejects(v.float64(), 3)
    assert message == (
        "Value does not match validator: got 3 (int64), expected v.float64() "
        "(use v.int64() or pass a float)"
    )


def test_int64_rejects_float_with_hint() -> None:
    assert "got 3.0 (float64), expected v.int64() (use v.float64() or pass an int)" in rejects(
        v.int64(), 3.0
    )


def test_int64_rejects_out_of_range() -> None:
    assert "outside the int64 range" in rejects(v.int64(), 2**64)


def test_boolean_is_not_int_and_int_is_not_boolean() -> None:
    assert "got true (boolean), expected v.int64()" in rejects(v.int64(), True)
    assert "got 1 (int64), expected v.boolean()" in rejects(v.boolean(), 1)


def test_message_truncates_long_values() -> None:
    message = rejects(v.float64(), "x" * 1000)
    assert "..." in message
    assert len(message) < 200


def test_describe_value_renders_json_like() -> None:
    assert describe_value(None) == "null (null)"
    assert describe_value({"a": [1, 2.5, True]}) == '{"a": [1, 2.5, true]} (object)'
    assert describe_value(b"abc") == "<3 bytes> (bytes)"
    assert describe_value(UNDEFINED) == "undefined (undefined)"


# --- any, id, literal ----------------------------------------------------------------------


def test_any_accepts_convex_values_only() -> None:
    for value in [None, 1, 1.5, "s", b"b", [1, {"a": None}], {"x": [b""]}]:
        v.any().check(value)
    assert "expected v.any()" in rejects(v.any(), (1, 2))
    assert "expected v.any()" in rejects(v.any(), {"$bad": 1})
    assert "expected v.any()" in rejects(v.any(), 2**70)


def test_id_accepts_ids_and_rejects_other_strings() -> None:
    v.id("tasks").check(new_id(5))
    message = rejects(v.id("tasks"), "not-an-id")
    assert message == (
        'Value does not match validator: got "not-an-id" (string), expected v.id("tasks")'
    )
    assert "expected v.id" in rejects(v.id("tasks"), 5)


def test_id_checks_table_with_resolver() -> None:
    ctx = Tables({"tasks": 5, "users": 6})
    v.id("tasks").check(new_id(5), ctx=ctx)
    message = rejects(v.id("tasks"), new_id(6), ctx)
    assert 'expected an id of table "tasks"' in message


def test_id_of_table_unknown_to_resolver_is_accepted() -> None:
    v.id("projects").check(new_id(9), ctx=Tables({}))


def test_id_allows_system_tables_and_rejects_bad_names() -> None:
    assert v.id("_storage").to_json() == {"type": "id", "tableName": "_storage"}
    for name in ["", "1abc", "a-b", "__x", 3, "a" * 65]:
        with pytest.raises(SchemaError):
            v.id(name)  # type: ignore[arg-type]


def test_literal_matches_type_and_value() -> None:
    v.literal("todo").check("todo")
    v.literal(1).check(1)
    v.literal(1.0).check(1.0)
    v.literal(True).check(True)
    assert "expected v.literal(1)" in rejects(v.literal(1), 1.0)
    assert "expected v.literal(1.0)" in rejects(v.literal(1.0), 1)
    assert "expected v.literal(True)" in rejects(v.literal(True), 1)
    assert 'expected v.literal("todo")' in rejects(v.literal("todo"), "done")


def test_literal_equality_distinguishes_types() -> None:
    assert v.literal(1) != v.literal(True)
    assert v.literal(1) != v.literal(1.0)
    assert v.literal("a") == v.literal("a")
    assert hash(v.literal(2)) == hash(v.literal(2))


@pytest.mark.parametrize("value", [None, b"x", [1], {"a": 1}, 2**63, object()])
def test_literal_rejects_unsupported_types(value: object) -> None:
    with pytest.raises(SchemaError, match=r"v\.literal\(\)"):
        v.literal(value)  # type: ignore[arg-type]


def test_literal_of_null_hints_at_v_null() -> None:
    with pytest.raises(SchemaError, match=r"use v\.null\(\)"):
        v.literal(None)  # type: ignore[arg-type]


def test_literal_nan_matches_nan_and_renders_as_python() -> None:
    v.literal(math.nan).check(math.nan)
    assert repr(v.literal(math.inf)) == 'v.literal(float("inf"))'


# --- containers ----------------------------------------------------------------------------


def test_array_checks_items_with_index_path() -> None:
    v.array(v.int64()).check([1, 2, 3])
    v.array(v.int64()).check([])
    message = rejects(v.array(v.int64()), [1, 2, "x"])
    assert message.startswith('Value does not match validator at path [2]: got "x" (string)')
    assert "expected v.array(v.int64())" in rejects(v.array(v.int64()), (1, 2))


def test_object_nested_path_in_message() -> None:
    validator = v.object({"settings": v.object({"isPublic": v.boolean()})})
    message = rejects(validator, {"settings": {"isPublic": "yes"}})
    assert message == (
        "Value does not match validator at path .settings.isPublic: "
        'got "yes" (string), expected v.boolean()'
    )


def test_object_path_through_arrays() -> None:
    validator = v.object({"items": v.array(v.object({"n": v.float64()}))})
    message = rejects(validator, {"items": [{"n": 1.0}, {"n": "2"}]})
    assert "at path .items[1].n:" in message


def test_object_rejects_unknown_field_naming_it() -> None:
    message = rejects(v.object({"a": v.string()}), {"a": "x", "color": "red"})
    assert 'at path .color: unexpected field "color"' in message


def test_object_rejects_missing_required_field_naming_it() -> None:
    message = rejects(v.object({"a": v.string(), "b": v.float64()}), {"a": "x"})
    assert 'missing required field "b", expected v.float64()' in message


def test_object_optional_field_may_be_absent_but_not_wrong() -> None:
    validator = v.object({"a": v.string(), "likes": v.optional(v.float64())})
    validator.check({"a": "x"})
    validator.check({"a": "x", "likes": 2.0})
    validator.check({"a": "x", "likes": UNDEFINED})
    assert "at path .likes: got null (null), expected v.float64()" in rejects(
        validator, {"a": "x", "likes": None}
    )


def test_object_rejects_non_dict() -> None:
    assert "got [] (array), expected v.object({})" in rejects(v.object({}), [])


def test_object_fields_are_read_only_and_ordered() -> None:
    validator = v.object({"b": v.string(), "a": v.optional(v.null())})
    assert list(validator.fields) == ["b", "a"]
    assert validator.fields["a"].is_optional
    assert not validator.fields["b"].is_optional
    with pytest.raises(TypeError):
        validator.fields["c"] = v.string()  # type: ignore[index]


def test_record_checks_keys_and_values() -> None:
    validator = v.record(v.string(), v.float64())
    validator.check({})
    validator.check({"a": 1.0, "b": 2.0})
    assert "at path .b: got 2 (int64), expected v.float64()" in rejects(validator, {"b": 2})
    assert "expected v.record" in rejects(validator, [1.0])


def test_record_with_id_keys_checks_keys() -> None:
    validator = v.record(v.id("users"), v.boolean())
    validator.check({new_id(3): True})
    message = rejects(validator, {"bob": True})
    assert 'at path .bob: got key "bob" (string), expected keys matching v.id("users")' in message


def test_record_with_literal_union_keys() -> None:
    validator = v.record(v.union(v.literal("a"), v.literal("b")), v.string())
    validator.check({"a": "x", "b": "y"})
    assert 'got key "c"' in rejects(validator, {"c": "z"})


@pytest.mark.parametrize(
    "keys", [v.float64(), v.literal(1), v.union(v.string(), v.int64()), v.optional(v.string())]
)
def test_record_rejects_unsupported_key_validators(keys: Validator) -> None:
    with pytest.raises(SchemaError, match=r"v\.record\(\) keys"):
        v.record(keys, v.string())


def test_record_rejects_optional_values() -> None:
    with pytest.raises(SchemaError, match="cannot be optional"):
        v.record(v.string(), v.optional(v.string()))


# --- unions and optionals ------------------------------------------------------------------


def test_union_accepts_any_member_and_names_whole_union() -> None:
    validator = v.union(v.literal("todo"), v.literal("done"))
    validator.check("todo")
    validator.check("done")
    message = rejects(validator, "doing")
    assert message == (
        'Value does not match validator: got "doing" (string), '
        'expected v.union(v.literal("todo"), v.literal("done"))'
    )


def test_union_with_single_object_member_reports_inner_path() -> None:
    validator = v.union(v.object({"theme": v.string()}), v.null())
    validator.check(None)
    message = rejects(validator, {"theme": 1.0})
    assert "at path .theme: got 1.0 (float64), expected v.string()" in message


def test_union_narrows_tagged_objects_by_literal_field() -> None:
    validator = v.union(
        v.object({"kind": v.literal("a"), "x": v.string()}),
        v.object({"kind": v.literal("b"), "y": v.float64()}),
    )
    validator.check({"kind": "b", "y": 1.0})
    assert "at path .y: got 1 (int64), expected v.float64()" in rejects(
        validator, {"kind": "b", "y": 1}
    )
    assert "expected v.union(" in rejects(validator, {"kind": "c"})


def test_union_of_int_and_float_accepts_both() -> None:
    validator = v.union(v.float64(), v.int64())
    validator.check(1)
    validator.check(1.0)
    assert "expected v.union(v.float64(), v.int64())" in rejects(validator, "1")


def test_empty_union_is_rejected() -> None:
    with pytest.raises(SchemaError, match="at least one"):
        v.union()


def test_optional_outside_object_acts_as_inner() -> None:
    validator = v.optional(v.string())
    assert validator.is_optional
    validator.check("x")
    validator.check(UNDEFINED)
    assert "expected v.string()" in rejects(validator, 1.0)


def test_optional_of_optional_collapses() -> None:
    assert v.optional(v.optional(v.string())) == v.optional(v.string())


def test_non_optional_rejects_undefined() -> None:
    assert "got undefined (undefined), expected v.string()" in rejects(v.string(), UNDEFINED)


# --- construction --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "hint"),
    [
        (lambda: v.array(str), r"did you mean v\.string\(\)"),
        (lambda: v.array(int), r"did you mean v\.int64\(\)"),
        (lambda: v.optional(None), r"did you mean v\.null\(\)"),
        (lambda: v.union(v.string(), float), r"did you mean v\.float64\(\)"),
        (lambda: v.array(v.string), r"call it: v\.string\(\)"),
        (lambda: v.object({"a": "string"}), r'field "a" expects a validator'),
        (lambda: v.record(v.string(), 3), r"v\.record\(\) values expects a validator"),
    ],
)
def test_non_validator_arguments_are_rejected(build: object, hint: str) -> None:
    with pytest.raises(SchemaError, match=hint):
        build()  # type: ignore[operator]


@pytest.mark.parametrize("name", [1, "", "$set", "caf\u00e9", "a" * 1025])
def test_object_rejects_bad_field_names(name: object) -> None:
    with pytest.raises(SchemaError, match=r"v\.object\(\) field"):
        v.object({name: v.string()})  # type: ignore[dict-item]


def test_object_requires_a_mapping() -> None:
    with pytest.raises(SchemaError, match="dict of field name"):
        v.object([("a", v.string())])  # type: ignore[arg-type]


def test_object_allows_system_like_field_names() -> None:
    # Return validators describe whole documents, so `_id` must be allowed in v.object().
    v.object({"_id": v.id("tasks"), "_creationTime": v.float64()})


def test_validators_are_immutable() -> None:
    validator = v.array(v.string())
    with pytest.raises(AttributeError):
        validator.element = v.int64()  # type: ignore[misc]


# --- repr and to_json ----------------------------------------------------------------------


def test_repr_is_the_python_expression() -> None:
    validator = v.object(
        {
            "status": v.union(v.literal("todo"), v.literal("done")),
            "tags": v.array(v.string()),
            "owner": v.optional(v.id("users")),
            "meta": v.record(v.string(), v.any()),
            "n": v.literal(-2),
            "flag": v.literal(False),
            "raw": v.bytes(),
        }
    )
    assert repr(validator) == (
        'v.object({"status": v.union(v.literal("todo"), v.literal("done")), '
        '"tags": v.array(v.string()), "owner": v.optional(v.id("users")), '
        '"meta": v.record(v.string(), v.any()), "n": v.literal(-2), '
        '"flag": v.literal(False), "raw": v.bytes()})'
    )
    assert eval(repr(validator), {"v": v}) == validator


def test_to_json_scalars() -> None:
    assert v.string().to_json() == {"type": "string"}
    assert v.float64().to_json() == {"type": "number"}
    assert v.int64().to_json() == {"type": "bigint"}
    assert v.boolean().to_json() == {"type": "boolean"}
    assert v.null().to_json() == {"type": "null"}
    assert v.bytes().to_json() == {"type": "bytes"}
    assert v.any().to_json() == {"type": "any"}


def test_to_json_literals_use_the_wire_encoding() -> None:
    assert v.literal("a").to_json() == {"type": "literal", "value": "a"}
    assert v.literal(5).to_json() == {"type": "literal", "value": {"$integer": "BQAAAAAAAAA="}}
    assert v.literal(1.5).to_json() == {"type": "literal", "value": 1.5}
    assert v.literal(True).to_json() == {"type": "literal", "value": True}


def test_to_json_containers() -> None:
    validator = v.object({"a": v.optional(v.array(v.string())), "b": v.union(v.id("t"), v.null())})
    assert validator.to_json() == {
        "type": "object",
        "value": {
            "a": {"fieldType": {"type": "array", "value": {"type": "string"}}, "optional": True},
            "b": {
                "fieldType": {
                    "type": "union",
                    "value": [{"type": "id", "tableName": "t"}, {"type": "null"}],
                },
                "optional": False,
            },
        },
    }
    assert v.record(v.string(), v.int64()).to_json() == {
        "type": "record",
        "keys": {"type": "string"},
        "values": {"fieldType": {"type": "bigint"}, "optional": False},
    }


def test_find_mismatch_returns_data() -> None:
    assert v.string().find_mismatch("x") is None
    mismatch = v.object({"a": v.string()}).find_mismatch({"a": 1.0}, ".doc")
    assert mismatch == Mismatch(".doc.a", "got 1.0 (float64), expected v.string()")


# --- validate_args -------------------------------------------------------------------------


def test_validate_args_accepts_and_returns_args() -> None:
    args = {"channel": "general", "limit": 3.0}
    spec = {"channel": v.string(), "limit": v.optional(v.float64())}
    assert validate_args(spec, args) is args
    assert validate_args(spec, {"channel": "x"}) == {"channel": "x"}


def test_validate_args_unexpected_argument() -> None:
    with pytest.raises(ValidationError) as info:
        validate_args({"a": v.string()}, {"a": "x", "x": 1.0})
    assert "unexpected argument 'x'" in str(info.value)
    assert info.value.short_msg == "ArgumentValidationError"


def test_validate_args_missing_argument() -> None:
    with pytest.raises(ValidationError, match="missing required argument 'title'"):
        validate_args({"title": v.string(), "n": v.optional(v.int64())}, {"n": 1})


def test_validate_args_wrong_type_names_path() -> None:
    expected = r"^Invalid arguments: at path \.settings\.on got 1\.0 \(float64\)"
    with pytest.raises(ValidationError, match=expected):
        validate_args({"settings": v.object({"on": v.boolean()})}, {"settings": {"on": 1.0}})


def test_validate_args_checks_ids_against_resolver() -> None:
    spec = {"id": v.id("tasks")}
    with pytest.raises(ValidationError, match='expected an id of table "tasks"'):
        validate_args(spec, {"id": new_id(2)}, Tables({"tasks": 1}))


def test_validate_args_without_validator_accepts_any_object() -> None:
    assert validate_args(None, {"anything": [1]}) == {"anything": [1]}
    with pytest.raises(ValidationError, match="arguments must be an object"):
        validate_args(None, [1])


def test_validate_args_accepts_object_validator() -> None:
    validator = v.object({"a": v.int64()})
    assert isinstance(validator, ObjectValidator)
    validate_args(validator, {"a": 1})
    with pytest.raises(ValidationError, match="unexpected argument 'b'"):
        validate_args(validator, {"a": 1, "b": 2})


def test_validate_args_rejects_bad_spec() -> None:
    with pytest.raises(SchemaError):
        validate_args([v.string()], {})  # type: ignore[arg-type]


def test_pagination_opts_accept_float_or_int_num_items() -> None:
    pagination_opts_validator.check({"numItems": 10.0, "cursor": None})
    pagination_opts_validator.check({"numItems": 10, "cursor": "abc", "endCursor": None})
    pagination_opts_validator.check(
        {"numItems": 5.0, "cursor": None, "id": 1.0, "maximumRowsRead": 100.0}
    )
    assert 'missing required field "cursor"' in rejects(
        pagination_opts_validator, {"numItems": 10.0}
    )
    assert "at path .numItems" in rejects(
        pagination_opts_validator, {"numItems": "10", "cursor": None}
    )


_CONSISTENCY_VALIDATORS = [
    v.string(),
    v.int64(),
    v.float64(),
    v.any(),
    v.literal(1),
    v.optional(v.boolean()),
    v.array(v.union(v.int64(), v.null())),
    v.object({"a": v.optional(v.string()), "b": v.union(v.optional(v.int64()), v.null())}),
    v.record(v.string(), v.array(v.float64())),
    v.union(v.object({"k": v.literal("x")}), v.object({"k": v.literal("y"), "n": v.int64()})),
]
_CONSISTENCY_VALUES = [
    None,
    1,
    1.0,
    True,
    "x",
    b"",
    UNDEFINED,
    2**64,
    [1, None],
    [1, "a"],
    {},
    {"a": "s"},
    {"b": None},
    {"b": UNDEFINED},
    {"a": "s", "b": 3},
    {"k": "x"},
    {"k": "y", "n": 1},
    {"k": "y", "n": 1.0},
    {"x": [1.0]},
    {"x": [1]},
    {"$x": 1},
]


@pytest.mark.parametrize("validator", _CONSISTENCY_VALIDATORS, ids=repr)
def test_matches_agrees_with_find_mismatch(validator: Validator) -> None:
    for value in _CONSISTENCY_VALUES:
        expected = validator.find_mismatch(value) is None
        assert validator.matches(value) is expected, value
