"""Schemas shared by the storage-level tests."""

from __future__ import annotations

from reactive.schema import define_schema, define_table
from reactive.validators import v

TEST_SCHEMA = define_schema(
    {
        "messages": define_table(
            {"channel": v.string(), "body": v.string(), "n": v.optional(v.float64())}
        )
        .index("by_channel", ["channel"])
        .index("by_channel_n", ["channel", "n"]),
        "accounts": define_table({"name": v.string(), "balance": v.float64()}).index(
            "by_name", ["name"]
        ),
    }
)
