"""Process-wide execution counters of the benchmark project, read through GET /bench/stats.

A module global, not a table: it counts every run of a handler in this server process,
including runs whose result was unchanged (not pushed) and mutation attempts that were retried.
"""

RUNS = {"messages:list": 0, "accounts:transfer": 0}


def bump(name):
    RUNS[name] += 1
