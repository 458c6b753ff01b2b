"""Conversation: sessions, history and resumable reply streams, with all state in Redis."""
