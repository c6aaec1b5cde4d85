"""The schema of DESIGN.md section 2, written exactly as it shows (the author API test)."""

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
