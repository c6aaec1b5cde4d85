from reactive import define_schema, define_table, v

schema = define_schema(
    {
        "docs": define_table(
            {
                "kind": v.string(),
                "lang": v.optional(v.string()),
                "embedding": v.optional(v.array(v.float64())),
            }
        ).vector_index(
            "by_embedding", vector_field="embedding", dimensions=4, filter_fields=["kind", "lang"]
        ),
    }
)
