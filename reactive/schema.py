"""Schemas: define_table / define_schema, index specs, and checking documents against them.

Invariant: a Schema, its TableDefinitions and IndexSpecs are immutable and were validated when
built. Every index key implicitly ends with `_creationTime, _id` (see IndexSpec.key_fields).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

import orjson

from reactive.errors import SchemaError, ValidationError
from reactive.search import MAX_FILTER_FIELDS, SEARCH_MARKER
from reactive.types import JsonValue, Value
from reactive.validators import (
    AnyValidator,
    ArrayValidator,
    IdResolver,
    Mismatch,
    ObjectValidator,
    OptionalValidator,
    PrimitiveValidator,
    UnionValidator,
    Validator,
    describe_value,
    v,
)
from reactive.values import UNDEFINED

__all__ = [
    "BY_CREATION_TIME",
    "BY_ID",
    "MAX_INDEXES_PER_TABLE",
    "MAX_INDEX_FIELDS",
    "IndexSpec",
    "Schema",
    "SearchIndexSpec",
    "TableDefinition",
    "VectorIndexSpec",
    "define_schema",
    "define_table",
    "get_field",
]

BY_ID: Final = "by_id"
BY_CREATION_TIME: Final = "by_creation_time"
MAX_INDEX_FIELDS: Final = 16
#: As in Convex; keeps every write's index maintenance bounded.
MAX_INDEXES_PER_TABLE: Final = 32
_MAX_NAME_LEN: Final = 64
_MAX_SHOWN: Final = 200
_IDENTIFIER: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_SYSTEM_FIELDS: Final = ("_id", "_creationTime")
#: What every index key ends with, so that keys are unique and ties go by creation order.
_KEY_TAIL: Final = ("_creationTime", "_id")


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """A named index over field paths, as declared (`fields` never holds the implicit tail)."""

    name: str
    fields: tuple[str, ...]

    @property
    def key_fields(self) -> tuple[str, ...]:
        """Every field whose value is part of the key, in key order.

        User indexes: fields + ("_creationTime", "_id"); by_id: ("_id",) alone, since an id
        is unique and nothing after it could change the order; by_creation_time:
        ("_creationTime", "_id").
        """
        if self.fields and self.fields[-1] == "_id":
            return self.fields
        tail = tuple(name for name in _KEY_TAIL if name not in self.fields)
        return self.fields + tail

    @property
    def is_system(self) -> bool:
        return self.name in (BY_ID, BY_CREATION_TIME)

    def to_json(self) -> dict[str, JsonValue]:
        return {"indexDescriptor": self.name, "fields": list(self.fields)}


@dataclass(frozen=True, slots=True)
class SearchIndexSpec:
    """A full-text search index: the string field searched and the fields `eq` may filter on.

    Stored in the catalog as an index whose fields are `stored_fields` (a leading
    `search.SEARCH_MARKER`, which no field name can be, marks it)."""

    name: str
    search_field: str
    filter_fields: tuple[str, ...] = ()

    @property
    def stored_fields(self) -> tuple[str, ...]:
        return (SEARCH_MARKER, self.search_field, *self.filter_fields)

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "indexDescriptor": self.name,
            "searchField": self.search_field,
            "filterFields": list(self.filter_fields),
        }


#: As Convex: a vector has 2 to 4,096 dimensions.
MIN_VECTOR_DIMENSIONS: Final = 2
MAX_VECTOR_DIMENSIONS: Final = 4096


@dataclass(frozen=True, slots=True)
class VectorIndexSpec:
    """A vector index: the array-of-float64 field, its dimensions and the filter fields.

    Not in the catalog: each process keeps it in memory (`reactive.vector_search`), built
    from the table and kept in step with the commit log."""

    name: str
    vector_field: str
    dimensions: int
    filter_fields: tuple[str, ...] = ()

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "indexDescriptor": self.name,
            "vectorField": self.vector_field,
            "dimensions": self.dimensions,
            "filterFields": list(self.filter_fields),
        }


_SYSTEM_INDEXES: Final = (
    IndexSpec(BY_ID, ("_id",)),
    IndexSpec(BY_CREATION_TIME, ("_creationTime",)),
)


@dataclass(frozen=True, slots=True)
class TableDefinition:
    """A table's document validator (user fields only) and its user-declared indexes."""

    validator: Validator
    indexes: tuple[IndexSpec, ...] = ()
    search_indexes: tuple[SearchIndexSpec, ...] = ()
    vector_indexes: tuple[VectorIndexSpec, ...] = ()

    def index(self, name: str, fields: Sequence[str]) -> TableDefinition:
        """A new definition with one more index; chain calls as in Convex."""
        _check_index_name(name, self.indexes, self._named_indexes())
        spec = IndexSpec(name, _checked_index_fields(name, fields, self.validator))
        return replace(self, indexes=(*self.indexes, spec))

    def _named_indexes(self) -> tuple[SearchIndexSpec | VectorIndexSpec, ...]:
        return (*self.search_indexes, *self.vector_indexes)

    def search_index(
        self, name: str, *, search_field: str, filter_fields: Sequence[str] = ()
    ) -> TableDefinition:
        """A new definition with one more full-text search index (Convex's searchIndex):
        `search_field` must be a string field; `eq` filters may name `filter_fields`."""
        _check_index_name(name, self.indexes, self._named_indexes())
        _check_index_field(name, search_field, self.validator)
        if not _may_be_string(self.validator, search_field.split(".")):
            raise SchemaError(
                f'Search index "{name}": search_field "{search_field}" must be a string field '
                f"(v.string() or v.optional(v.string())) in {_abbreviated(self.validator)}"
            )
        filters = _checked_filter_fields(
            "Search", name, filter_fields, search_field, self.validator
        )
        spec = SearchIndexSpec(name, search_field, filters)
        return replace(self, search_indexes=(*self.search_indexes, spec))

    def vector_index(
        self,
        name: str,
        *,
        vector_field: str,
        dimensions: int,
        filter_fields: Sequence[str] = (),
    ) -> TableDefinition:
        """A new definition with one more vector index (Convex's vectorIndex): `vector_field`
        must be v.array(v.float64()) (or optional), `dimensions` 2 to 4,096; searched with
        `ctx.vector_search` in actions."""
        _check_index_name(name, self.indexes, self._named_indexes())
        _check_index_field(name, vector_field, self.validator)
        if not _may_be_vector(self.validator, vector_field.split(".")):
            raise SchemaError(
                f'Vector index "{name}": vector_field "{vector_field}" must be '
                f"v.array(v.float64()) (or optional) in {_abbreviated(self.validator)}"
            )
        if (
            isinstance(dimensions, bool)
            or not isinstance(dimensions, int)
            or not MIN_VECTOR_DIMENSIONS <= dimensions <= MAX_VECTOR_DIMENSIONS
        ):
            raise SchemaError(
                f'Vector index "{name}": dimensions must be an integer from '
                f"{MIN_VECTOR_DIMENSIONS} to {MAX_VECTOR_DIMENSIONS}, got {dimensions!r}"
            )
        filters = _checked_filter_fields(
            "Vector", name, filter_fields, vector_field, self.validator
        )
        spec = VectorIndexSpec(name, vector_field, dimensions, filters)
        return replace(self, vector_indexes=(*self.vector_indexes, spec))

    def stored_indexes(self) -> dict[str, tuple[str, ...]]:
        """Every index the catalog keeps for this table: name -> stored fields."""
        stored = {spec.name: tuple(spec.fields) for spec in self.all_indexes()}
        stored.update((spec.name, spec.stored_fields) for spec in self.search_indexes)
        return stored

    def get_search_index(self, name: str) -> SearchIndexSpec | None:
        return next((spec for spec in self.search_indexes if spec.name == name), None)

    def all_indexes(self) -> list[IndexSpec]:
        """by_id, by_creation_time, then the user indexes in definition order."""
        return [*_SYSTEM_INDEXES, *self.indexes]

    def get_index(self, name: str) -> IndexSpec | None:
        return next((spec for spec in self.all_indexes() if spec.name == name), None)

    def to_json(self, table_name: str) -> dict[str, JsonValue]:
        return {
            "tableName": table_name,
            "indexes": [spec.to_json() for spec in self.indexes],
            "searchIndexes": [spec.to_json() for spec in self.search_indexes],
            "vectorIndexes": [spec.to_json() for spec in self.vector_indexes],
            "documentType": self.validator.to_json(),
        }


def define_table(fields: Mapping[str, Validator] | Validator) -> TableDefinition:
    """A table whose documents match `fields` (a dict becomes v.object(fields)).

    The validator must be an object, a union of objects, or v.any(); user field names must
    not start with "_" (reserved for `_id` and `_creationTime`).
    """
    if isinstance(fields, Validator):
        validator = fields
    elif isinstance(fields, Mapping):
        validator = v.object(fields)
    else:
        raise SchemaError(
            f"define_table() expects a dict of field validators or a v.object(...), "
            f"got {type(fields).__name__}"
        )
    _check_document_validator(validator)
    return TableDefinition(validator)


def _check_document_validator(validator: Validator) -> None:
    if isinstance(validator, AnyValidator):
        return
    if isinstance(validator, UnionValidator):
        for member in validator.members:
            _check_document_validator(member)
        return
    if not isinstance(validator, ObjectValidator):
        raise SchemaError(
            "define_table() documents must be described by v.object(...), a v.union(...) of "
            f"objects or v.any(), got {validator!r}"
        )
    for name in validator.fields:
        if name.startswith("_"):
            raise SchemaError(
                f'define_table() field "{name}": field names starting with "_" are reserved '
                "for system fields (_id and _creationTime are added to every document)"
            )


# --- index checks --------------------------------------------------------------------------


def _check_index_name(
    name: object,
    existing: tuple[IndexSpec, ...],
    search: tuple[SearchIndexSpec | VectorIndexSpec, ...] = (),
) -> None:
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name) or len(name) > _MAX_NAME_LEN:
        raise SchemaError(
            f"Invalid index name {name!r}: index names start with a letter and contain only "
            f"letters, digits and underscores (at most {_MAX_NAME_LEN} characters)"
        )
    if name in (BY_ID, BY_CREATION_TIME):
        raise SchemaError(f'Index name "{name}" is reserved: every table already has it')
    if name in {spec.name for spec in existing} | {spec.name for spec in search}:
        raise SchemaError(f'Index "{name}" is defined twice on the same table')
    if len(existing) + len(search) >= MAX_INDEXES_PER_TABLE:
        raise SchemaError(
            f'Index "{name}": a table can have at most {MAX_INDEXES_PER_TABLE} indexes'
        )


def _checked_index_fields(
    index: str, fields: Sequence[str], validator: Validator
) -> tuple[str, ...]:
    if isinstance(fields, str) or not isinstance(fields, Sequence):
        hint = f'; did you mean ["{fields}"]?' if isinstance(fields, str) else ""
        raise SchemaError(f'Index "{index}": fields must be a list of field paths{hint}')
    if not fields:
        raise SchemaError(f'Index "{index}": fields must not be empty')
    if len(fields) > MAX_INDEX_FIELDS:
        raise SchemaError(
            f'Index "{index}" has {len(fields)} fields; the limit is {MAX_INDEX_FIELDS}'
        )
    for position, path in enumerate(fields):
        _check_index_field(index, path, validator)
        if path in fields[:position]:
            raise SchemaError(f'Index "{index}" lists field "{path}" twice')
    return tuple(fields)


def _check_index_field(index: str, path: object, validator: Validator) -> None:
    if not isinstance(path, str) or not path or "" in path.split("."):
        raise SchemaError(
            f'Index "{index}": {path!r} is not a field path (names joined by ".", '
            'e.g. "settings.theme")'
        )
    if path in _SYSTEM_FIELDS:
        raise SchemaError(
            f'Index "{index}": "{path}" must not be listed; every index implicitly ends '
            "with _creationTime, _id"
        )
    if not _has_path(validator, path.split(".")):
        raise SchemaError(
            f'Index "{index}": field "{path}" does not exist in the table\'s validator '
            f"{_abbreviated(validator)}"
        )


def _abbreviated(validator: Validator) -> str:
    shown = repr(validator)
    return shown if len(shown) <= _MAX_SHOWN else shown[: _MAX_SHOWN - 3] + "..."


def _has_path(validator: Validator, names: list[str]) -> bool:
    """Whether a document matching `validator` can have a value at the field path `names`.

    A union has the path when any member has it (other members leave it undefined, which an
    index orders first); v.any() may hold anything below it.
    """
    if not names or isinstance(validator, AnyValidator):
        return True
    if isinstance(validator, OptionalValidator):
        return _has_path(validator.inner, names)
    if isinstance(validator, UnionValidator):
        return any(_has_path(member, names) for member in validator.members)
    if isinstance(validator, ObjectValidator):
        child = validator.fields.get(names[0])
        return child is not None and _has_path(child, names[1:])
    return False


def _checked_filter_fields(
    kind: str, index: str, filter_fields: Sequence[str], indexed: str, validator: Validator
) -> tuple[str, ...]:
    if isinstance(filter_fields, str) or not isinstance(filter_fields, Sequence):
        raise SchemaError(f'{kind} index "{index}": filter_fields must be a list of field paths')
    if len(filter_fields) > MAX_FILTER_FIELDS:
        raise SchemaError(
            f'{kind} index "{index}" has {len(filter_fields)} filter fields; the limit is '
            f"{MAX_FILTER_FIELDS}"
        )
    for position, path in enumerate(filter_fields):
        _check_index_field(index, path, validator)
        if path in filter_fields[:position] or path == indexed:
            raise SchemaError(
                f'{kind} index "{index}" lists field "{path}" twice (filter fields must be '
                "distinct and differ from the indexed field)"
            )
    return tuple(filter_fields)


def _may_be_vector(validator: Validator, names: list[str]) -> bool:
    """Whether the value at `names` is declared as an array of float64 (v.any() may be one)."""
    if isinstance(validator, AnyValidator):
        return True
    if isinstance(validator, OptionalValidator):
        return _may_be_vector(validator.inner, names)
    if not names:
        element = validator.element if isinstance(validator, ArrayValidator) else None
        return isinstance(element, PrimitiveValidator) and element.kind == "float64"
    if isinstance(validator, UnionValidator):
        return any(_may_be_vector(member, names) for member in validator.members)
    if isinstance(validator, ObjectValidator):
        child = validator.fields.get(names[0])
        return child is not None and _may_be_vector(child, names[1:])
    return False


def _may_be_string(validator: Validator, names: list[str]) -> bool:
    """Whether the value at `names` can be a string (v.any() may hold one)."""
    if isinstance(validator, AnyValidator):
        return True
    if isinstance(validator, OptionalValidator):
        return _may_be_string(validator.inner, names)
    if isinstance(validator, UnionValidator):
        return any(_may_be_string(member, names) for member in validator.members)
    if not names:
        return isinstance(validator, PrimitiveValidator) and validator.kind == "string"
    if isinstance(validator, ObjectValidator):
        child = validator.fields.get(names[0])
        return child is not None and _may_be_string(child, names[1:])
    return False


def get_field(doc: Mapping[str, Value], path: str) -> Value | object:
    """The value at dotted field path `path` ("settings.theme"), or UNDEFINED when any step
    is missing or is not an object."""
    current: object = doc
    for name in path.split("."):
        if not isinstance(current, Mapping):
            return UNDEFINED
        current = current.get(name, UNDEFINED)
        if current is UNDEFINED:
            return UNDEFINED
    return current


# --- schemas -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schema:
    """The tables of an app. Tables not named here are allowed and their documents unchecked.

    `schema_validation=False` turns document checks off (as Convex's schemaValidation);
    `strict_table_name_types` only affects generated client types.
    """

    tables: dict[str, TableDefinition]
    schema_validation: bool = True
    strict_table_name_types: bool = True

    def table(self, name: str) -> TableDefinition | None:
        return self.tables.get(name)

    def validate_document(self, table: str, doc: object, ctx: IdResolver | None = None) -> None:
        """Raise ValidationError naming table, path, value and validator unless `doc` fits.

        `_id` and `_creationTime` are not part of the table's validator; when present they
        must be a str and a float.
        """
        definition = self.tables.get(table)
        if definition is None or not self.schema_validation:
            return
        if not isinstance(doc, dict):
            problem = f"got {describe_value(doc)}, expected an object"
            raise _document_error(table, Mismatch("", problem))
        mismatch = _system_field_mismatch(doc) or definition.validator.find_mismatch(
            {name: value for name, value in doc.items() if name not in _SYSTEM_FIELDS}, "", ctx
        )
        if mismatch is not None:
            raise _document_error(table, mismatch)

    def fingerprint(self) -> str:
        """A stable sha256 hex digest of tables, validators (to_json), indexes and flags.

        Tables and indexes are hashed in name order, so reordering definitions is no change.
        """
        described = {
            "tables": {
                name: {
                    "documentType": definition.validator.to_json(),
                    "indexes": [spec.to_json() for spec in _by_name(definition.indexes)],
                    **(
                        {
                            "searchIndexes": [
                                spec.to_json()
                                for spec in sorted(definition.search_indexes, key=_name)
                            ]
                        }
                        if definition.search_indexes
                        else {}
                    ),
                    **(
                        {
                            "vectorIndexes": [
                                spec.to_json()
                                for spec in sorted(definition.vector_indexes, key=_name)
                            ]
                        }
                        if definition.vector_indexes
                        else {}
                    ),
                }
                for name, definition in self.tables.items()
            },
            "schemaValidation": self.schema_validation,
            "strictTableNameTypes": self.strict_table_name_types,
        }
        canonical = orjson.dumps(described, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()

    def to_json(self) -> dict[str, JsonValue]:
        """Convex-like description: tables (by name) with indexes and documentType."""
        return {
            "tables": [self.tables[name].to_json(name) for name in sorted(self.tables)],
            "schemaValidation": self.schema_validation,
            "strictTableNameTypes": self.strict_table_name_types,
        }


def _name(spec: SearchIndexSpec | VectorIndexSpec) -> str:
    return spec.name


def _by_name(indexes: tuple[IndexSpec, ...]) -> list[IndexSpec]:
    return sorted(indexes, key=lambda spec: spec.name)


def _system_field_mismatch(doc: dict[str, object]) -> Mismatch | None:
    for name, expected in (("_id", v.string()), ("_creationTime", v.float64())):
        if name in doc:
            mismatch = expected.find_mismatch(doc[name], f".{name}")
            if mismatch is not None:
                return mismatch
    return None


def _document_error(table: str, mismatch: Mismatch) -> ValidationError:
    where = f"at path {mismatch.path} " if mismatch.path else ""
    return ValidationError(
        f'Document in table "{table}" does not match the schema: {where}{mismatch.problem}'
    )


def define_schema(
    tables: Mapping[str, TableDefinition],
    *,
    schema_validation: bool = True,
    strict_table_name_types: bool = True,
) -> Schema:
    """The app's schema: table name -> define_table(...)."""
    if not isinstance(tables, Mapping):
        raise SchemaError(
            f"define_schema() expects a dict of table name -> define_table(...), "
            f"got {type(tables).__name__}"
        )
    for name, definition in tables.items():
        _check_table(name, definition)
    return Schema(dict(tables), schema_validation, strict_table_name_types)


def _check_table(name: object, definition: object) -> None:
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name) or len(name) > _MAX_NAME_LEN:
        raise SchemaError(
            f"Invalid table name {name!r}: table names start with a letter and contain only "
            f"letters, digits and underscores (at most {_MAX_NAME_LEN} characters)"
        )
    if not isinstance(definition, TableDefinition):
        raise SchemaError(
            f'Table "{name}" must be defined with define_table(...), '
            f"got {type(definition).__name__}"
        )
