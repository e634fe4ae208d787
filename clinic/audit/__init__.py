"""Audit trail: append-only, hash-chained events for every access to client data."""
