"""Liveness, readiness and the worker heartbeat."""
