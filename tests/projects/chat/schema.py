from reactive import define_schema, define_table, v

schema = define_schema(
    {
        "messages": define_table(
            {"channel": v.string(), "body": v.string(), "author": v.optional(v.string())}
        ).index("by_channel", ["channel"]),
        "counters": define_table({"name": v.string(), "value": v.float64()}).index(
            "by_name", ["name"]
        ),
    }
)
