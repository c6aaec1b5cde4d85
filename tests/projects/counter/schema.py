from reactive import define_schema, define_table, v

schema = define_schema(
    {
        "counters": define_table({"name": v.string(), "value": v.float64()}).index(
            "by_name", ["name"]
        ),
        "rows": define_table({"counter": v.string()}).index("by_counter", ["counter"]),
    }
)
