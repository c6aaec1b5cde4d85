"""Auth for the chat test project: tests point CHAT_ISSUER at a local OIDC issuer."""

import os

providers = (
    [{"domain": os.environ["CHAT_ISSUER"], "application_id": "convex"}]
    if os.environ.get("CHAT_ISSUER")
    else []
)
