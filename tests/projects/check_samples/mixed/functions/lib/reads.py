"""Helpers that read through ctx.db, handed in by the caller."""


async def all_tasks(db):
    return await db.query("tasks").collect()  # check: helper scan


def tasks_table(db):
    return db.query("tasks")


def project_tasks(db, project_id):
    return db.query("tasks").with_index("by_projectId", lambda q: q.eq("projectId", project_id))
