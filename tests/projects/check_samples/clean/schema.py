from reactive.schema import define_schema, define_table
from reactive.validators import v

schema = define_schema(
    {"notes": define_table({"owner": v.string(), "text": v.string()}).index("by_owner", ["owner"])}
)
