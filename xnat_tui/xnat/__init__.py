"""Async XNAT REST client, label rules and typed errors (no Textual)."""
