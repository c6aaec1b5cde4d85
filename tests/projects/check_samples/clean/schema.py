from reactive import define_schema, define_table, v

schema = define_schema(
    {"notes": define_table({"owner": v.string(), "text": v.string()}).index("by_owner", ["owner"])}
)
