from reactive import define_schema, define_table, v

schema = define_schema(
    {
        # One row per run of a job: counting them counts the runs that committed.
        "effects": define_table({"name": v.string()}).index("by_name", ["name"]),
    }
)
