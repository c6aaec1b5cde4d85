from reactive.schema import define_schema, define_table
from reactive.validators import v

schema = define_schema(
    {
        "tasks": define_table(
            {"projectId": v.string(), "title": v.string(), "done": v.boolean()}
        ).index("by_projectId", ["projectId"]),
        "events": define_table({"kind": v.string()}),
    }
)
