"""The `v` validator namespace: immutable descriptions of Convex values, and checks against them.

Invariant: a validator is fully checked when built (a bad one raises SchemaError at import time)
and never changes; `check` raises ValidationError naming the path, the value and the validator.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol

from reactive.errors import InvalidIdError, SchemaError, ValidationError
from reactive.ids import decode_id, is_id
from reactive.types import JsonValue, Value
from reactive.values import (
    INT64_MAX,
    INT64_MIN,
    UNDEFINED,
    check_field_name,
    check_value,
    encode_value,
    type_name,
    values_equal,
)

__all__ = [
    "AnyValidator",
    "ArrayValidator",
    "IdResolver",
    "IdValidator",
    "LiteralValidator",
    "Mismatch",
    "ObjectValidator",
    "OptionalValidator",
    "PrimitiveValidator",
    "RecordValidator",
    "UnionValidator",
    "Validator",
    "ValidatorNamespace",
    "args_validator",
    "describe_value",
    "pagination_opts_validator",
    "v",
    "validate_args",
]

#: Longest rendering of a value or a validator inside an error message.
_MAX_SHOWN: Final = 80
_MAX_SHOWN_VALIDATOR: Final = 160
_MAX_TABLE_NAME: Final = 64
#: System tables ("_storage", "_scheduled_functions") may be referenced, hence one optional "_".
_ID_TABLE_NAME: Final = re.compile(r"_?[A-Za-z][A-Za-z0-9_]{0,63}")


class IdResolver(Protocol):
    """Maps a table name to the number encoded in its ids; None if the table is unknown."""

    def table_number(self, name: str) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Why a value does not match: where (`.a[2].b`, "" for the value itself) and what.

    `problem` reads as a phrase: 'got "yes" (string), expected v.boolean()'.
    """

    path: str
    problem: str

    def message(self) -> str:
        where = f" at path {self.path}" if self.path else ""
        return f"Value does not match validator{where}: {self.problem}"


# --- rendering values and validators in messages -------------------------------------------


def _value_pieces(value: object) -> Iterator[str]:
    """A JSON-like rendering, lazily, so a huge value costs only what the message shows."""
    if value is UNDEFINED:
        yield "undefined"
    elif value is None or isinstance(value, bool):
        yield json.dumps(value)
    elif isinstance(value, int | float):
        yield repr(value)
    elif isinstance(value, str):
        yield json.dumps(value[: _MAX_SHOWN + 1], ensure_ascii=False)
    elif isinstance(value, bytes):
        yield f"<{len(value)} bytes>"
    elif isinstance(value, list):
        yield from _sequence_pieces("[", "]", ((None, item) for item in value))
    elif isinstance(value, dict):
        yield from _sequence_pieces("{", "}", value.items())
    else:
        yield repr(value)[: _MAX_SHOWN + 1]


def _sequence_pieces(open_: str, close: str, items: Iterable[tuple[Any, object]]) -> Iterator[str]:
    yield open_
    for index, (key, item) in enumerate(items):
        yield ", " if index else ""
        if key is not None:
            yield f"{json.dumps(str(key), ensure_ascii=False)}: "
        yield from _value_pieces(item)
    yield close


def _truncate(pieces: Iterator[str], limit: int) -> str:
    shown = ""
    for piece in pieces:
        shown += piece
        if len(shown) > limit:
            return shown[: limit - 3] + "..."
    return shown


def describe_value(value: object) -> str:
    """Short rendering of a value with its Convex type, for messages: '"yes" (string)'."""
    kind = "undefined" if value is UNDEFINED else type_name(value)
    return f"{_truncate(_value_pieces(value), _MAX_SHOWN)} ({kind})"


def _shown(validator: Validator) -> str:
    return _truncate(iter([repr(validator)]), _MAX_SHOWN_VALIDATOR)


def _quoted(name: object) -> str:
    return json.dumps(name if isinstance(name, str) else repr(name), ensure_ascii=False)


def _field_path(path: str, name: object) -> str:
    return f"{path}.{name}"


def _got_expected(path: str, value: object, validator: Validator, hint: str = "") -> Mismatch:
    return Mismatch(path, f"got {describe_value(value)}, expected {_shown(validator)}{hint}")


# --- validators ----------------------------------------------------------------------------


class Validator:
    """Base of every validator. Subclasses are frozen dataclasses; compare them with ==."""

    __slots__ = ()

    @property
    def is_optional(self) -> bool:
        """True only for v.optional(...): the field it describes may be absent."""
        return False

    def check(self, value: object, path: str = "", ctx: IdResolver | None = None) -> None:
        """Raise ValidationError unless `value` matches; `ctx` lets v.id check the table."""
        mismatch = self.find_mismatch(value, path, ctx)
        if mismatch is not None:
            raise ValidationError(mismatch.message())

    def matches(self, value: object, ctx: IdResolver | None = None) -> bool:
        """Whether `value` matches. Builds no message, so unions can try members cheaply."""
        raise NotImplementedError

    def find_mismatch(
        self, value: object, path: str = "", ctx: IdResolver | None = None
    ) -> Mismatch | None:
        """The first reason `value` does not match, or None when it matches."""
        raise NotImplementedError

    def to_json(self) -> dict[str, JsonValue]:
        """Convex's JSON description of this validator (used by codegen and fingerprints)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class _Primitive:
    """How one scalar kind is named, described in JSON and recognised."""

    builder: str
    json_type: str
    accepts: Callable[[object], bool]


def _is_int64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_PRIMITIVES: Final = {
    "string": _Primitive("string", "string", lambda value: isinstance(value, str)),
    "float64": _Primitive("float64", "number", lambda value: isinstance(value, float)),
    "int64": _Primitive("int64", "bigint", _is_int64),
    "boolean": _Primitive("boolean", "boolean", lambda value: isinstance(value, bool)),
    "null": _Primitive("null", "null", lambda value: value is None),
    "bytes": _Primitive("bytes", "bytes", lambda value: isinstance(value, bytes)),
}


@dataclass(frozen=True, slots=True, repr=False)
class PrimitiveValidator(Validator):
    """v.string(), v.float64(), v.int64(), v.boolean(), v.null() or v.bytes()."""

    kind: str

    def __post_init__(self) -> None:
        if self.kind not in _PRIMITIVES:
            raise SchemaError(f"Unknown primitive validator kind {self.kind!r}")

    def __repr__(self) -> str:
        return f"v.{self.kind}()"

    def matches(self, value: object, ctx: IdResolver | None = None) -> bool:
        if not _PRIMITIVES[self.kind].accepts(value):
            return False
        return self.kind != "int64" or INT64_MIN <= value <= INT64_MAX  # type: ignore[operator]

    def find_mismatch(
        self, value: object, path: str = "", ctx: IdResolver | None = None
    ) -> Mismatch | None:
        if self.matches(value):
            return None
        return _got_expected(path, value, self, self._hint(value))

    def _hint(self, value: object) -> str:
        if self.kind == "int64" and _is_int64(value):
            return " (the value is outside the int64 range)"
        # Python ints are int64 and JS numbers arrive as floats: mixing them up is the usual slip.
        if self.kind == "float64" and _is_int64(value):
            return " (use v.int64() or pass a float)"
        if self.kind == "int64" and isinstance(value, float):
            return " (use v.float64() or pass an int)"
        return ""

    def to_json(self) -> dict[str, JsonValue]:
        return {"type": _PRIMITIVES[self.kind].json_type}


@dataclass(frozen=True, slots=True, repr=False)
class AnyValidator(Validator):
    """v.any(): any Convex value."""

    def __repr__(self) -> str:
        return "v.any()"

    def matches(self, value: object, ctx: IdResolver | None = None) -> bool:
        return self.find_mismatch(value) is None

    def find_mismatch(
        self, value: object, path: str = "", ctx: IdResolver | None = None
    ) -> Mismatch | None:
        try:
            check_value(value, path)
        except ValidationError as error:
            return Mismatch(path, f"{error.msg} (expected v.any(), any Convex value)")
        return None

    def to_json(self) -> dict[str, JsonValue]:
        return {"type": "any"}


@dataclass(frozen=True, slots=True, repr=False)
class IdValidator(Validator):
    """v.id(table): a document id string; with an IdResolver, an id of that very table."""

    table_name: str

    def __post_init__(self) -> None:
        _check_table_name_for_id(self.table_name)

    def __repr__(self) -> str:
        return f"v.id({_quoted(self.table_name)})"

    def matches(self, value: object, ctx: IdResolver | None = None) -> bool:
        return self.find_mismatch(value, "", ctx) is None

    def find_mismatch(
        self, value: object, path: str = "", ctx: IdResolver | None = None
    ) -> Mismatch | None:
        # Building a message here is cheap: a non-id is never a near miss inside a union.
        if not isinstance(value, str) or not is_id(value):
            return _got_expected(path, value, self)
        expected = ctx.table_number(self.table_name) if ctx is not None else None
        if expected is None or _id_table_number(value) == expected:
            return None
        return Mismatch(
            path,
            f"got {describe_value(value)}, an id of another table, "
            f"expected an id of table {_quoted(self.table_name)}",
        )

    def to_json(self) -> dict[str, JsonValue]:
        return {"type": "id", "tableName": self.table_name}


def _id_table_number(value: str) -> int | None:
    try:
        return decode_id(value)[0]
    except InvalidIdError:
        return None


def _check_table_name_for_id(name: object) -> None:
    if not isinstance(name, str) or not _ID_TABLE_NAME.fullmatch(name):
        raise SchemaError(
            "v.id() expects a table name (letters, digits and underscores, starting with a "
            f"letter, at most {_MAX_TABLE_NAME} characters), got {name!r}"
        )


def _literal_key(value: object) -> tuple[str, str]:
    # Python's == says True == 1 == 1.0, but they are three different Convex literals.
    return (type_name(value), repr(value))


@dataclass(frozen=True, slots=True, repr=False)
class LiteralValidator(Validator):
    """v.literal(x): exactly the value x (a str, bool, int64 or float64), type included."""

    value: str | bool | int | float = field(compare=False)
    _key: tuple[str, str] = field(init=False)

    def __post_init__(self) -> None:
        _check_literal(self.value)
        object.__setattr__(self, "_key", _literal_key(self.value))

    def __repr__(self) -> str:
        return f"v.literal({_python_literal(self.value)})"

    def matches(self, value: object, ctx: IdResolver | None = None) -> bool:
        same_type = value is not UNDEFINED and type_name(value) == type_name(self.value)
        return same_type and values_equal(value, self.value)

    def find_mismatch(
        self, value: object, path: str = "", ctx: IdResolver | None = None
    ) -> Mismatch | None:
        return None if self.matches(value) else _got_expected(path, value, self)

    def to_json(self) -> dict[str, JsonValue]:
        return {"type": "literal", "value": encode_value(self.value)}


def _check_literal(value: object) -> None:
    if isinstance(value, str | bool | float):
        check_value(value)
        return
    if _is_int64(value):
        if not INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
            raise SchemaError(f"v.literal() integer {value} is outside the int64 range")
        return
    hint = "; use v.null() for null" if value is None else ""
    raise SchemaError(
        f"v.literal() accepts a str, bool, int or float, got {value!r} "
        f"({type(value).__name__}){hint}"
    )


def _python_literal(value: str | bool | int | float) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and not math.isfinite(value):
        return f'float("{value!r}")'
    return repr(value)


@dataclass(frozen=True, slots=True, repr=False)
class OptionalValidator(Validator):
    """v.optional(x): as an object field, the field may be absent; elsewhere it acts as x.

    Outside an object it also accepts UNDEFINED (an absent value), which x alone would not.
    """

    inner: Validator

    @property
    def is_optional(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"v.optional({self.inner!r})"

    def matches(self, value: object, ctx: IdResolver | None = None) -> bool:
        return value is UNDEFINED or self.inner.matches(value, ctx)

    def find_mismatch(
        self, value: object, path: str = "", ctx: IdResolver | None = None
    ) -> Mismatch | None:
        if value is UNDEFINED:
            return None
        return self.inner.find_mismatch(value, path, ctx)

    def to_json(self) -> dict[str, JsonValue]:
        # Convex marks optionality on the enclosing object's field, not on the type itself.
        return self.inner.to_json()


@dataclass(frozen=True, slots=True, repr=False)
class ArrayValidator(Validator):
    """v.array(x): a list whose every item matches x."""

    element: Validator

    def __repr__(self) -> str:
        return f"v.array({self.element!r})"

    def matches(self, value: object, ctx: IdResolver | None = None) -> bool:
        return isinstance(value, list) and all(self.element.matches(i, ctx) for i in value)

    def find_mismatch(
        self, value: object, path: str = "", ctx: IdResolver | None = None
    ) -> Mismatch | None:
        if not isinstance(value, list):
            return _got_expected(path, value, self)
        for index, item in enumerate(value):
            mismatch = self.element.find_mismatch(item, f"{path}[{index}]", ctx)
            if mismatch is not None:
                return mismatch
        return None

    def to_json(self) -> dict[str, JsonValue]:
        return {"type": "array", "value": self.element.to_json()}


@dataclass(frozen=True, slots=True, repr=False)
class ObjectValidator(Validator):
    """v.object({...}): a dict with exactly these fields; optional ones may be absent.

    A field whose value is UNDEFINED counts as absent (patches use it to remove a field).
    """

    field_items: tuple[tuple[str, Validator], ...]
    _by_name: Mapping[str, Validator] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", MappingProxyType(dict(self.field_items)))

    @property
    def fields(self) -> Mapping[str, Validator]:
        """Field name -> validator, in definition order (a read-only view)."""
        return self._by_name

    def __repr__(self) -> str:
        inside = ", ".join(f"{_quoted(name)}: {item!r}" for name, item in self.field_items)
        return f"v.object({{{inside}}})"

    def matches(self, value: object, ctx: IdResolver | None = None) -> bool:
        if not isinstance(value, dict):
            return False
        known = self._by_name
        if any(name not in known and item is not UNDEFINED for name, item in value.items()):
            return False
        return all(
            _field_matches(validator, value.get(name, UNDEFINED), ctx)
            for name, validator in self.field_items
        )

    def find_mismatch(
        self, value: object, path: str = "", ctx: IdResolver | None = None
    ) -> Mismatch | None:
        if not isinstance(value, dict):
            return _got_expected(path, value, self)
        # Extra fields first: a misspelt field shows up as both extra and missing, and the
        # extra one is the clue the author needs.
        return self._extra_field(value, path) or self._field_mismatch(value, path, ctx)

    def _extra_field(self, value: dict[Any, Any], path: str) -> Mismatch | None:
        for name, item in value.items():
            if name not in self._by_name and item is not UNDEFINED:
                return Mismatch(
                    _field_path(path, name),
                    f"unexpected field {_quoted(name)}, not in {_shown(self)}",
                )
        return None

    def _field_mismatch(
        self, value: dict[Any, Any], path: str, ctx: IdResolver | None
    ) -> Mismatch | None:
        for name, validator in self.field_items:
            item = value.get(name, UNDEFINED)
            if item is UNDEFINED:
                if validator.is_optional:
                    continue
                return Mismatch(
                    _field_path(path, name),
                    f"missing required field {_quoted(name)}, expected {_shown(validator)}",
                )
            mismatch = validator.find_mismatch(item, _field_path(path, name), ctx)
            if mismatch is not None:
                return mismatch
        return None

    def to_json(self) -> dict[str, JsonValue]:
        described: dict[str, JsonValue] = {
            name: {"fieldType": item.to_json(), "optional": item.is_optional}
            for name, item in self.field_items
        }
        return {"type": "object", "value": described}


def _field_matches(validator: Validator, item: object, ctx: IdResolver | None) -> bool:
    # An absent field is fine exactly when the field is optional (the same rule as
    # ObjectValidator._field_mismatch), even if the validator would accept UNDEFINED.
    return validator.is_optional if item is UNDEFINED else validator.matches(item, ctx)


@dataclass(frozen=True, slots=True, repr=False)
class RecordValidator(Validator):
    """v.record(k, x): a dict of any size whose keys match k and whose values match x."""

    keys: Validator
    values: Validator

    def __post_init__(self) -> None:
        if not _is_record_key_validator(self.keys):
            raise SchemaError(
                "v.record() keys must be v.string(), v.id(...) or a union of string literals, "
                f"got {self.keys!r}"
            )
        if self.values.is_optional:
            raise SchemaError(f"v.record() values cannot be optional, got {self.values!r}")

    def __repr__(self) -> str:
        return f"v.record({self.keys!r}, {self.values!r})"

    def matches(self, value: object, ctx: IdResolver | None = None) -> bool:
        return isinstance(value, dict) and all(
            self.keys.matches(key, ctx) and self.values.matches(item, ctx)
            for key, item in value.items()
        )

    def find_mismatch(
        self, value: object, path: str = "", ctx: IdResolver | None = None
    ) -> Mismatch | None:
        if not isinstance(value, dict):
            return _got_expected(path, value, self)
        for key, item in value.items():
            item_path = _field_path(path, key)
            if not self.keys.matches(key, ctx):
                return Mismatch(
                    item_path,
                    f"got key {describe_value(key)}, expected keys matching {_shown(self.keys)}",
                )
            mismatch = self.values.find_mismatch(item, item_path, ctx)
            if mismatch is not None:
                return mismatch
        return None

    def to_json(self) -> dict[str, JsonValue]:
        values: dict[str, JsonValue] = {"fieldType": self.values.to_json(), "optional": False}
        return {"type": "record", "keys": self.keys.to_json(), "values": values}


def _is_record_key_validator(validator: Validator) -> bool:
    if isinstance(validator, IdValidator):
        return True
    if isinstance(validator, PrimitiveValidator):
        return validator.kind == "string"
    if isinstance(validator, LiteralValidator):
        return isinstance(validator.value, str)
    if isinstance(validator, UnionValidator):
        return all(_is_record_key_validator(member) for member in validator.members)
    return False


@dataclass(frozen=True, slots=True, repr=False)
class UnionValidator(Validator):
    """v.union(a, b, ...): a value matching at least one member."""

    members: tuple[Validator, ...]

    def __post_init__(self) -> None:
        if not self.members:
            raise SchemaError("v.union() needs at least one validator")

    def __repr__(self) -> str:
        return f"v.union({', '.join(repr(member) for member in self.members)})"

    def matches(self, value: object, ctx: IdResolver | None = None) -> bool:
        return any(member.matches(value, ctx) for member in self.members)

    def find_mismatch(
        self, value: object, path: str = "", ctx: IdResolver | None = None
    ) -> Mismatch | None:
        if self.matches(value, ctx):
            return None
        closest = _closest_container(self, value)
        if closest is not None:
            # Only one member could be meant (e.g. the object of v.union(v.object(..),
            # v.null())): its precise, deeper message helps more than the whole union.
            return closest.find_mismatch(value, path, ctx)
        return _got_expected(path, value, self)

    def to_json(self) -> dict[str, JsonValue]:
        return {"type": "union", "value": [member.to_json() for member in self.members]}


def _flat_members(validator: Validator) -> Iterator[Validator]:
    if isinstance(validator, UnionValidator):
        for member in validator.members:
            yield from _flat_members(member)
    elif isinstance(validator, OptionalValidator):
        yield from _flat_members(validator.inner)
    else:
        yield validator


def _closest_container(union: UnionValidator, value: object) -> Validator | None:
    """The single array/object/record member the value was evidently meant for, if any."""
    candidates: list[Validator]
    if isinstance(value, list):
        candidates = [m for m in _flat_members(union) if isinstance(m, ArrayValidator)]
    elif isinstance(value, dict):
        candidates = [m for m in _flat_members(union) if _could_be_meant_for(m, value)]
    else:
        return None
    return candidates[0] if len(candidates) == 1 else None


def _could_be_meant_for(validator: Validator, value: dict[Any, Any]) -> bool:
    """Same container kind, and for objects every literal field (a tag) agrees."""
    if isinstance(validator, RecordValidator):
        return True
    if not isinstance(validator, ObjectValidator):
        return False
    return all(
        name not in value or item.matches(value[name])
        for name, item in validator.field_items
        if isinstance(item, LiteralValidator)
    )


# --- construction --------------------------------------------------------------------------

_TYPE_HINTS: Final[dict[object, str]] = {
    str: "v.string()",
    int: "v.int64()",
    float: "v.float64()",
    bool: "v.boolean()",
    bytes: "v.bytes()",
    type(None): "v.null()",
    None: "v.null()",
    list: "v.array(...)",
    dict: "v.object({...})",
}


def _require_validator(candidate: object, where: str) -> Validator:
    if isinstance(candidate, Validator):
        return candidate
    hint = ""
    if isinstance(candidate, type | None) and candidate in _TYPE_HINTS:
        hint = f"; did you mean {_TYPE_HINTS[candidate]}?"
    elif callable(candidate) and getattr(candidate, "__qualname__", "").startswith(
        "ValidatorNamespace."
    ):
        hint = f"; call it: v.{getattr(candidate, '__name__', '?')}()"
    raise SchemaError(f"{where} expects a validator such as v.string(), got {candidate!r}{hint}")


def _object_fields(spec: object) -> tuple[tuple[str, Validator], ...]:
    if not isinstance(spec, Mapping):
        raise SchemaError(
            f"v.object() expects a dict of field name -> validator, got {type(spec).__name__}"
        )
    items = []
    for name, item in spec.items():
        try:
            check_field_name(name)
        except ValidationError as error:
            raise SchemaError(f"v.object() field {name!r}: {error.msg}") from None
        items.append((name, _require_validator(item, f"v.object() field {_quoted(name)}")))
    return tuple(items)


class ValidatorNamespace:
    """The builders behind `v`; every method returns a new immutable validator."""

    __slots__ = ()

    @staticmethod
    def string() -> PrimitiveValidator:
        return PrimitiveValidator("string")

    @staticmethod
    def float64() -> PrimitiveValidator:
        return PrimitiveValidator("float64")

    @staticmethod
    def number() -> PrimitiveValidator:
        """Alias of float64(), as in Convex (a JS number)."""
        return PrimitiveValidator("float64")

    @staticmethod
    def int64() -> PrimitiveValidator:
        return PrimitiveValidator("int64")

    @staticmethod
    def bigint() -> PrimitiveValidator:
        """Alias of int64(), as in Convex (a JS bigint)."""
        return PrimitiveValidator("int64")

    @staticmethod
    def boolean() -> PrimitiveValidator:
        return PrimitiveValidator("boolean")

    @staticmethod
    def null() -> PrimitiveValidator:
        return PrimitiveValidator("null")

    @staticmethod
    def bytes() -> PrimitiveValidator:
        return PrimitiveValidator("bytes")

    @staticmethod
    def any() -> AnyValidator:
        return AnyValidator()

    @staticmethod
    def id(table_name: str) -> IdValidator:
        return IdValidator(table_name)

    @staticmethod
    def literal(value: str | bool | int | float) -> LiteralValidator:
        return LiteralValidator(value)

    @staticmethod
    def optional(inner: Validator) -> OptionalValidator:
        checked = _require_validator(inner, "v.optional()")
        # v.optional(v.optional(x)) means nothing more than v.optional(x).
        return checked if isinstance(checked, OptionalValidator) else OptionalValidator(checked)

    @staticmethod
    def array(element: Validator) -> ArrayValidator:
        return ArrayValidator(_require_validator(element, "v.array()"))

    @staticmethod
    def object(fields: Mapping[str, Validator]) -> ObjectValidator:
        return ObjectValidator(_object_fields(fields))

    @staticmethod
    def record(keys: Validator, values: Validator) -> RecordValidator:
        return RecordValidator(
            _require_validator(keys, "v.record() keys"),
            _require_validator(values, "v.record() values"),
        )

    @staticmethod
    def union(*members: Validator) -> UnionValidator:
        return UnionValidator(tuple(_require_validator(m, "v.union()") for m in members))


#: The validator builders: `v.string()`, `v.object({...})`, ... (Convex's `v`).
v: Final = ValidatorNamespace()


# --- function arguments --------------------------------------------------------------------


def args_validator(spec: Mapping[str, Validator] | Validator | None) -> Validator | None:
    """A function's `args=` as one validator: a dict becomes v.object(dict); None stays None."""
    if spec is None or isinstance(spec, Validator):
        return spec
    if isinstance(spec, Mapping):
        return v.object(spec)
    raise SchemaError(
        f"args must be a dict of name -> validator, a validator or None, got {type(spec).__name__}"
    )


def validate_args(
    validators: Mapping[str, Validator] | Validator | None,
    args: object,
    ctx: IdResolver | None = None,
) -> dict[str, Value]:
    """Check a function's arguments; returns them unchanged. None means "accept any args".

    Raises ValidationError (short_msg "ArgumentValidationError") naming the bad argument.
    """
    if not isinstance(args, dict):
        raise _args_error(f"arguments must be an object, got {describe_value(args)}")
    validator = args_validator(validators)
    if validator is None:
        return args
    if isinstance(validator, ObjectValidator):
        _check_arg_names(validator, args)
    mismatch = validator.find_mismatch(args, "", ctx)
    if mismatch is not None:
        where = f"at path {mismatch.path} " if mismatch.path else ""
        raise _args_error(f"{where}{mismatch.problem}")
    return args


def _check_arg_names(validator: ObjectValidator, args: dict[str, Any]) -> None:
    accepted = ", ".join(repr(name) for name in validator.fields) or "no arguments"
    for name, item in args.items():
        if name not in validator.fields and item is not UNDEFINED:
            raise _args_error(f"unexpected argument {name!r} (the function accepts {accepted})")
    for name, item in validator.field_items:
        if not item.is_optional and args.get(name, UNDEFINED) is UNDEFINED:
            raise _args_error(f"missing required argument {name!r}, expected {_shown(item)}")


def _args_error(detail: str) -> ValidationError:
    return ValidationError(f"Invalid arguments: {detail}", short_msg="ArgumentValidationError")


#: Validator of Convex's `paginationOpts` argument. numItems also takes an int, because
#: Python clients send ints where JS clients send numbers.
pagination_opts_validator: Final = v.object(
    {
        "numItems": v.union(v.float64(), v.int64()),
        "cursor": v.union(v.string(), v.null()),
        "endCursor": v.optional(v.union(v.string(), v.null())),
        "id": v.optional(v.float64()),
        "maximumRowsRead": v.optional(v.float64()),
        "maximumBytesRead": v.optional(v.float64()),
    }
)
