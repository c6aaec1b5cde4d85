"""Schema of the benchmark project: chat messages per channel and bank accounts."""

from reactive import define_schema, define_table, v

schema = define_schema(
    {
        "messages": define_table({"channel": v.string(), "body": v.string()}).index(
            "by_channel", ["channel"]
        ),
        "accounts": define_table({"name": v.string(), "balance": v.float64()}),
    }
)
