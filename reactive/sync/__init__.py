"""The Convex sync protocol over one WebSocket (see PROTOCOL.md section 5)."""

from reactive.sync.session import AuthRejected, ProtocolError, SyncSession

__all__ = ["AuthRejected", "ProtocolError", "SyncSession"]
