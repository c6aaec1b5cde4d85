"""The bank of tests/test_cluster.py: accounts whose total transfers must keep, and tagged
deliveries whose every acknowledged insert must be stored exactly once."""

from reactive import define_schema, define_table, v

schema = define_schema(
    {
        "accounts": define_table({"number": v.float64(), "balance": v.float64()}).index(
            "by_number", ["number"]
        ),
        "deliveries": define_table({"tag": v.string()}).index("by_tag", ["tag"]),
    }
)
