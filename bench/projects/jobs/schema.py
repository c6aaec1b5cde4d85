from reactive import define_schema, define_table, v

schema = define_schema({"runs": define_table({"late": v.float64(), "at": v.float64()})})
