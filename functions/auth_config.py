"""Auth providers: Clerk, whose issuer is CLERK_JWT_ISSUER_DOMAIN (tokens with aud "convex").
Without the variable there are no providers, so the app starts (signed-out only) without Clerk.
"""

from __future__ import annotations

import os

__all__ = ["providers"]

providers = (
    [{"domain": os.environ["CLERK_JWT_ISSUER_DOMAIN"], "application_id": "convex"}]
    if os.environ.get("CLERK_JWT_ISSUER_DOMAIN")
    else []
)
