from reactive import define_schema, define_table, v

schema = define_schema(
    {
        "items": define_table(
            {"group": v.string(), "body": v.string(), "tag": v.optional(v.string())}
        )
        .index("by_group", ["group"])
        .index("by_tag", ["tag", "group"]),
        "others": define_table({"note": v.string()}),
    }
)
