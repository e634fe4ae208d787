"""Clients, episodes of care, consents and the client timeline."""
