"""The shared vocabulary of reactive: type names used across every layer.

Imports nothing from the package, so any module may import it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NewType, TypeAlias

__all__ = [
    "Document",
    "DocumentId",
    "FunctionKind",
    "IndexId",
    "IndexKey",
    "JsonValue",
    "Order",
    "TableName",
    "TableNumber",
    "Timestamp",
    "Value",
]

#: Commit timestamp: nanoseconds since the Unix epoch, strictly increasing, always < 2**63.
Timestamp = NewType("Timestamp", int)

#: Name of a table as the author writes it ("messages", "_storage").
TableName: TypeAlias = str

#: Small integer that identifies a table inside ids and storage rows.
TableNumber = NewType("TableNumber", int)

#: Integer that identifies one index in storage.
IndexId = NewType("IndexId", int)

#: A document id as clients see it: a string that encodes its table (see ids.py).
DocumentId: TypeAlias = str

#: Order-preserving bytes of an index entry (see index_keys.py).
IndexKey: TypeAlias = bytes

#: A Convex value as Python holds it: None, bool, int (int64), float (float64), str, bytes,
#: list of values, dict of str -> value.
Value: TypeAlias = "bool | int | float | str | bytes | list[Value] | dict[str, Value] | None"

#: A document as functions see it: field name -> Convex value, `_id` and `_creationTime`
#: included. Values are typed Any so that author code such as `doc["title"].strip()` checks.
Document: TypeAlias = dict[str, Any]

#: Plain JSON as produced by json/orjson.
JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"


class Order(StrEnum):
    """Direction of an index scan."""

    ASC = "asc"
    DESC = "desc"


class FunctionKind(StrEnum):
    """What a registered function is: read-only, transactional write, or free to do I/O."""

    QUERY = "query"
    MUTATION = "mutation"
    ACTION = "action"
