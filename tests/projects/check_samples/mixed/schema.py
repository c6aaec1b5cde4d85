from reactive import define_schema, define_table, v

schema = define_schema(
    {
        "tasks": define_table(
            {"projectId": v.string(), "title": v.string(), "done": v.boolean()}
        ).index("by_projectId", ["projectId"]),
        "events": define_table({"kind": v.string()}),
    }
)
