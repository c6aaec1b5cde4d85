"""The author API of reactive: everything a project's `schema.py` and `functions/` import.

    from reactive import query, mutation, v, define_schema, define_table, AppError

Everything else under `reactive.` is the engine and may change between versions.
"""

from reactive.auth import Identity
from reactive.context import (
    ActionCtx,
    Auth,
    DatabaseReader,
    DatabaseWriter,
    Document,
    Id,
    MutationCtx,
    QueryCtx,
    Scheduler,
)
from reactive.crons import CronJobs
from reactive.errors import AppError
from reactive.file_storage import OWNER_FIELD as STORAGE_OWNER_FIELD
from reactive.file_storage import ActionStorage, StorageReader, StorageWriter
from reactive.functions import (
    FunctionDef,
    HttpRouter,
    action,
    http_action,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
)
from reactive.query_builder import QueryBuilder
from reactive.references import FunctionReference, api, internal
from reactive.schema import define_schema, define_table
from reactive.validators import pagination_opts_validator, v
from reactive.values import UNDEFINED

__all__ = [
    "STORAGE_OWNER_FIELD",
    "UNDEFINED",
    "ActionCtx",
    "ActionStorage",
    "AppError",
    "Auth",
    "CronJobs",
    "DatabaseReader",
    "DatabaseWriter",
    "Document",
    "FunctionDef",
    "FunctionReference",
    "HttpRouter",
    "Id",
    "Identity",
    "MutationCtx",
    "QueryBuilder",
    "QueryCtx",
    "Scheduler",
    "StorageReader",
    "StorageWriter",
    "action",
    "api",
    "define_schema",
    "define_table",
    "http_action",
    "internal",
    "internal_action",
    "internal_mutation",
    "internal_query",
    "mutation",
    "pagination_opts_validator",
    "query",
    "v",
]
