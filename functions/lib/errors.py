"""The app's client-facing errors: AppError data with a `code` the UI branches on. Shapes:
{"code": "UNAUTHORIZED", "message"}, {"code": "NOT_FOUND", "resource"}, {"code": "FORBIDDEN"},
and {"code": "INVALID_NAME" | "COMMENTS_DISABLED" | ..., "message"} for rejected input.
"""

from __future__ import annotations

from reactive import AppError

__all__ = ["forbidden", "invalid", "not_found", "unauthorized"]


def unauthorized(message: str = "Unauthorized") -> AppError:
    """No signed-in user (or one whose Clerk account has not been synced yet)."""
    return AppError({"code": "UNAUTHORIZED", "message": message}, message)


def not_found(resource: str) -> AppError:
    """`resource` ("Project", "Task", ...) does not exist (or no longer exists)."""
    return AppError({"code": "NOT_FOUND", "resource": resource}, f"{resource} not found")


def forbidden(message: str = "Forbidden") -> AppError:
    """The signed-in user may not do this; `message` says why, for logs and people."""
    return AppError({"code": "FORBIDDEN"}, message)


def invalid(code: str, message: str) -> AppError:
    """Input that passed the validators but breaks an app rule (e.g. INVALID_NAME)."""
    return AppError({"code": code, "message": message}, message)
