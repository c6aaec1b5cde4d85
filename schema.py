"""The seed app's schema: users synced from Clerk, projects, tasks, comments, files, and the
Clerk and Stripe webhook events already processed."""

from __future__ import annotations

from reactive import define_schema, define_table, v

plan = v.union(v.literal("free"), v.literal("pro"), v.literal("enterprise"))
project_status = v.union(v.literal("draft"), v.literal("active"), v.literal("archived"))
task_status = v.union(v.literal("todo"), v.literal("in_progress"), v.literal("done"))
priority = v.union(v.literal("low"), v.literal("medium"), v.literal("high"))

schema = define_schema(
    {
        "users": define_table(
            {
                "clerkId": v.string(),
                "email": v.string(),
                "name": v.optional(v.string()),
                "imageUrl": v.optional(v.string()),
                "plan": plan,
                "stripeCustomerId": v.optional(v.string()),
                "stripeSubscriptionId": v.optional(v.string()),
                "credits": v.number(),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_clerkId", ["clerkId"])
        .index("by_email", ["email"])
        .index("by_stripeCustomerId", ["stripeCustomerId"]),
        "projects": define_table(
            {
                "userId": v.id("users"),
                "organizationId": v.optional(v.string()),
                "name": v.string(),
                "description": v.optional(v.string()),
                "status": project_status,
                "settings": v.object(
                    {
                        "isPublic": v.boolean(),
                        "allowComments": v.boolean(),
                        "theme": v.optional(v.string()),
                    }
                ),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_userId", ["userId"])
        .index("by_organizationId", ["organizationId"])
        .index("by_status", ["status"])
        .index("by_userId_status", ["userId", "status"]),
        "tasks": define_table(
            {
                "projectId": v.id("projects"),
                "title": v.string(),
                "description": v.optional(v.string()),
                "status": task_status,
                "priority": priority,
                "assigneeId": v.optional(v.id("users")),
                "dueDate": v.optional(v.number()),
                "completedAt": v.optional(v.number()),
                "order": v.number(),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_projectId", ["projectId"])
        .index("by_projectId_status", ["projectId", "status"])
        .index("by_assigneeId", ["assigneeId"])
        .index("by_dueDate", ["dueDate"])
        .search_index("search_title", search_field="title", filter_fields=["projectId"]),
        "comments": define_table(
            {
                "taskId": v.id("tasks"),
                "userId": v.id("users"),
                "content": v.string(),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_taskId", ["taskId"])
        .index("by_userId", ["userId"]),
        "files": define_table(
            {
                "userId": v.id("users"),
                "projectId": v.optional(v.id("projects")),
                "storageId": v.id("_storage"),
                "name": v.string(),
                "type": v.string(),
                "size": v.number(),
                "createdAt": v.number(),
            }
        )
        .index("by_userId", ["userId"])
        .index("by_projectId", ["projectId"])
        .index("by_storageId", ["storageId"]),
        # Clerk webhook messages (svix ids) already processed, so a re-delivery changes nothing.
        "clerkEvents": define_table(
            {"svixId": v.string(), "type": v.string(), "processedAt": v.number()}
        ).index("by_svixId", ["svixId"]),
        # Per Clerk user: the newest event applied (Clerk's ms `timestamp`), so a late one is
        # ignored, and whether they were deleted (a tombstone: Clerk never reuses user ids).
        "clerkUserStates": define_table(
            {"clerkId": v.string(), "lastEventAt": v.number(), "deleted": v.boolean()}
        ).index("by_clerkId", ["clerkId"]),
        # Stripe webhook events already applied, so a re-delivered event changes nothing.
        "stripeEvents": define_table(
            {"eventId": v.string(), "type": v.string(), "processedAt": v.number()}
        ).index("by_eventId", ["eventId"]),
    }
)
