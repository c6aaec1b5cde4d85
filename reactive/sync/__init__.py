"""The Convex sync protocol over one WebSocket (see docs/docs/PROTOCOL.md section 5)."""

from reactive.protocol import ProtocolError
from reactive.sync.session import AuthRejected, SyncSession

__all__ = ["AuthRejected", "ProtocolError", "SyncSession"]
