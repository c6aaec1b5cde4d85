"""Schema of the codegen fixture project: one table per document shape codegen must type."""

from reactive import define_schema, define_table, v

schema = define_schema(
    {
        "notes": define_table(
            {
                "title": v.string(),
                "tags": v.array(v.string()),
                "owner": v.optional(v.id("users")),
                "layout": v.object({"x": v.float64(), "pinned": v.optional(v.boolean())}),
                "attrs": v.record(v.string(), v.float64()),
                "meta": v.optional(v.any()),
            }
        ).index("by_title", ["title"]),
        "users": define_table({"name": v.string()}),
        "events": define_table(
            v.union(
                v.object({"kind": v.literal("click"), "x": v.float64()}),
                v.object({"kind": v.literal("key"), "key": v.string()}),
            )
        ),
        "blobs": define_table(v.any()),
    }
)
