"""The schema of the author-API example in ARCHITECTURE.md, written exactly as it shows."""

from reactive import define_schema, define_table, v

schema = define_schema(
    {
        "messages": define_table(
            {
                "channel": v.string(),
                "body": v.string(),
                "likes": v.optional(v.float64()),
            }
        ).index("by_channel", ["channel"]),
    }
)
